import { PRESETS, type DataRef } from '../../api/recipe.ts';
import type { Model } from '../../native-models/ir/model.ts';
import { openDataRef } from '../evaluate/data/open-ref.ts';
import type { Dataset, ModelInputSpec } from '../evaluate/data/types.ts';

/**
 * The model file records how its calibration data was read (metadata_props), because a model
 * calibrated on MNIST pixels scaled to 0–1 and evaluated on raw 0–255 pixels gives wrong figures
 * without any error: every activation range is 255× off (98.92 % → 98.09 % top-1, SQNR 39 → 0 dB on
 * the MNIST fixture). `whittle eval` reads it back (evaluate.ts).
 */
export const CALIBRATION_PREPROCESS_KEY = 'whittle.calibration.preprocess';

type Preset = (typeof PRESETS)[number];

/** Opens a step's calibration data for `model` and records on the model how it was read. */
export async function openCalibrationData(model: Model, ref: DataRef, inputs: ModelInputSpec[], opts: { baseDir: string; limit?: number | undefined; seed?: number }): Promise<Dataset> {
  const dataset = await openDataRef(ref, inputs, opts);
  model.setMetadata(CALIBRATION_PREPROCESS_KEY, ref.preprocess ?? 'none');
  return dataset;
}

/** The preprocessing a model's calibration data was read with, when a Whittle step recorded it. */
export function recordedPreprocess(model: Model): Preset | null {
  const value = model.metadata(CALIBRATION_PREPROCESS_KEY);
  return value !== undefined && (PRESETS as readonly string[]).includes(value) ? value as Preset : null;
}
