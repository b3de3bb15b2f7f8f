/**
 * How one model input wants its data: the dims after the batch axis (null where free), where the
 * channels are for 4-D inputs, and checks that the options make sense for it.
 */
import { WhittleError } from '../../../api/errors.ts';
import type { DatasetOptions, ModelInputSpec } from './types.ts';
import { getPreset, type Preset } from './preprocess.ts';

export interface InputPlan {
  spec: ModelInputSpec;
  sampleDims: (number | null)[];
  /** 4-D inputs only: NCHW or NHWC. */
  layout: 'nchw' | 'nhwc' | null;
  preset: Preset;
  /** Set when a preset was asked for but this input takes integers: it gets the stored values. */
  presetIgnored: string | null;
  /** Index of the channel axis within sampleDims (4-D inputs only). */
  channelAxis: number | null;
}

/** Free dims come as strings, null, or non-positive numbers (onnxruntime reports -1). */
function fixedDim(d: number | string | null): number | null {
  return typeof d === 'number' && d > 0 ? d : null;
}

/** NCHW when dim 1 is 1 or 3 and the last dim is not; NHWC otherwise. */
export function guessLayout(shape: ModelInputSpec['shape']): 'nchw' | 'nhwc' {
  const c1 = fixedDim(shape[1] ?? null);
  const last = fixedDim(shape[3] ?? null);
  return (c1 === 1 || c1 === 3) && last !== 1 && last !== 3 ? 'nchw' : 'nhwc';
}

/**
 * `soleInput`: whether this is the model's only input. A preset that cannot apply to an input is a
 * usage error when that input is all the model takes, and is skipped for it (with a warning) when
 * the model has other inputs the preset is meant for.
 */
export function planInput(spec: ModelInputSpec, options: DatasetOptions, soleInput = true): InputPlan {
  if (spec.shape.length === 0) {
    throw new WhittleError('UNSUPPORTED', `model input ${spec.name} is a scalar; data sources feed inputs with a batch axis`);
  }
  const asked = getPreset(options.preprocess ?? 'none');
  // Integer inputs (uint8 images, token ids) take the stored values: models that want raw bytes
  // normalise inside the graph, and a multi-input model's preset is meant for its float images.
  const isFloat = spec.dtype === 'float32' || spec.dtype === 'float16' || spec.dtype === 'float64';
  const rank4 = spec.shape.length === 4;
  if (asked.needsRgb && isFloat && !rank4 && soleInput) {
    throw new WhittleError('BAD_USAGE', `--preprocess ${asked.name} needs a 4-D image input, but model input ${spec.name} is [${spec.shape.join(',')}]`);
  }
  const applies = isFloat && (rank4 || !asked.needsRgb);
  // the photo still gets the preset's crop: only the value mapping is skipped
  const preset = applies ? asked : { ...getPreset('none'), imageFit: asked.imageFit };
  const presetIgnored = !applies && asked.name !== 'none'
    ? `--preprocess ${asked.name} does not apply to ${spec.dtype} input ${spec.name} [${spec.shape.join(',')}]: it gets the stored values`
    : null;
  const layout = rank4 ? (options.layout ?? guessLayout(spec.shape)) : null;
  const sampleDims = spec.shape.slice(1).map(fixedDim);
  const channelAxis = layout === 'nchw' ? 0 : layout === 'nhwc' ? 2 : null;
  if (preset.needsRgb && channelAxis !== null && sampleDims[channelAxis] !== null && sampleDims[channelAxis] !== 3) {
    throw new WhittleError('BAD_USAGE', `--preprocess ${preset.name} needs 3 colour channels, but model input ${spec.name} [${spec.shape.join(',')}] has ${sampleDims[channelAxis]} (layout ${layout}); try --layout or another preset`);
  }
  if (options.size !== undefined && channelAxis !== null) {
    const spatial = layout === 'nchw' ? [sampleDims[1], sampleDims[2]] : [sampleDims[0], sampleDims[1]];
    if (spatial.some((d) => d !== null && d !== options.size)) {
      throw new WhittleError('BAD_USAGE', `--size ${options.size} disagrees with model input ${spec.name} [${spec.shape.join(',')}], whose image size is fixed`);
    }
  }
  return { spec, sampleDims, layout, preset, presetIgnored, channelAxis };
}
