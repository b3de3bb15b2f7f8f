/**
 * Data for calibration and evaluation (SPEC §4): open a DATA path against the model's inputs and
 * stream batches shaped, laid out, preprocessed and typed for that model.
 */
export type {
  Batch, Dataset, DatasetKind, DatasetOptions, HostDType, HostTensor, ModelInputSpec, PresetName,
} from './types.ts';
export { PRESET_NAMES, tokenInputOf } from './types.ts';
export { openDataset } from './open.ts';
export { guessLayout } from './input-plan.ts';
export { float16BitsToNumber, float32ToFloat16Bits } from './float16.ts';
export { decodeTensorProto, type DecodedTensor } from './tensor-proto.ts';
export { openDataRef } from './open-ref.ts';
