import { PLAN_METHODS, PruneStep, QuantizeStep, type PRESETS, type PRUNE_METHODS, type QUANTIZE_METHODS } from '../../../../api/recipe.ts';

/**
 * What the Compress view shows for each method: a one-line description, whether it needs
 * calibration data, and which options of api/recipe.ts it uses (only those are shown).
 */

export type QuantizeMethod = (typeof QUANTIZE_METHODS)[number];
export type PruneMethod = (typeof PRUNE_METHODS)[number];

export type QuantizeOption = 'algorithm' | 'biasCorrection' | 'calibration' | 'percentile' | 'movingAverage' | 'symmetricRanges' | 'perChannel' | 'activationType' | 'weightType' | 'reduceRange' | 'symmetric' | 'blockSize' | 'format' | 'keepIoTypes' | 'includeConv' | 'includeGather';
export type PruneOption = 'sparsity' | 'scope' | 'pattern' | 'optionalPattern' | 'roundTo' | 'importance' | 'comparison' | 'sequential' | 'protectFirstLast' | 'minParameters';

export const QUANTIZE_INFO: Record<QuantizeMethod, { label: string; help: string; calib: boolean; options: QuantizeOption[]; formats: ReadonlyArray<'onnx' | 'tfjs'> }> = {
  dynamic: {
    label: 'Dynamic int8',
    help: 'int8 weights; activations quantized at run time (MatMul, Gemm). No data needed; best for transformer-style models.',
    calib: false,
    options: ['perChannel', 'weightType', 'reduceRange', 'symmetric', 'includeConv'],
    formats: ['onnx'],
  },
  static: {
    label: 'Static int8 (QDQ)',
    help: 'int8 weights and activations, ranges measured on calibration data. The fastest on CPU for CNNs.',
    calib: true,
    options: ['calibration', 'percentile', 'movingAverage', 'symmetricRanges', 'perChannel', 'biasCorrection', 'activationType', 'reduceRange', 'algorithm'],
    formats: ['onnx'],
  },
  fp16: {
    label: 'fp16',
    help: 'Half-precision floats: half the size, usually indistinguishable; fast on GPUs.',
    calib: false,
    options: ['keepIoTypes'],
    formats: ['onnx', 'tfjs'],
  },
  int4: {
    label: 'int4 weight-only',
    help: '4-bit weights in blocks (MatMulNBits) for MatMul and Gemm; activations stay float.',
    calib: false,
    options: ['blockSize', 'symmetric', 'format', 'algorithm', 'includeGather'],
    formats: ['onnx'],
  },
  'int8-weight': {
    label: 'int8 weight-only',
    help: '8-bit weights in blocks (MatMulNBits) for MatMul and Gemm; activations stay float.',
    calib: false,
    options: ['blockSize', 'symmetric', 'format', 'algorithm', 'includeGather'],
    formats: ['onnx'],
  },
  uint8: {
    label: 'uint8 weights (TF.js)',
    help: 'TF.js weight quantization: 1 byte a weight, dequantized when the model loads. No data needed.',
    calib: false,
    options: [],
    formats: ['tfjs'],
  },
  uint16: {
    label: 'uint16 weights (TF.js)',
    help: 'TF.js weight quantization: 2 bytes a weight, nearly lossless. No data needed.',
    calib: false,
    options: [],
    formats: ['tfjs'],
  },
};

/** Whether a quantize step reads calibration data: the method needs it, or GPTQ chooses its weights from it. */
export function quantizeUsesCalib(q: Pick<QuantizeStep, 'method' | 'algorithm'>): boolean {
  return QUANTIZE_INFO[q.method].calib || (q.algorithm === 'gptq' && QUANTIZE_INFO[q.method].options.includes('algorithm'));
}

/** The quantize methods that apply to a model format. */
export function quantizeMethodsFor(format: 'onnx' | 'tfjs'): QuantizeMethod[] {
  return (Object.keys(QUANTIZE_INFO) as QuantizeMethod[]).filter((m) => QUANTIZE_INFO[m].formats.includes(format));
}

/** calib: needed (true), or used when given ('optional': channel pruning refits the layers after with it). */
export const PRUNE_INFO: Record<PruneMethod, { label: string; help: string; calib: boolean | 'optional'; options: PruneOption[]; formats: ReadonlyArray<'onnx' | 'tfjs'> }> = {
  magnitude: {
    label: 'Magnitude',
    help: 'Zero the smallest weights, per layer or with one threshold across layers. No data needed.',
    calib: false,
    options: ['sparsity', 'scope', 'protectFirstLast', 'minParameters'],
    formats: ['onnx', 'tfjs'],
  },
  nm: {
    label: 'N:M structured',
    help: 'N of every M consecutive input weights are zero (2:4 is what sparse tensor cores accelerate).',
    calib: false,
    options: ['pattern', 'protectFirstLast', 'minParameters'],
    formats: ['onnx', 'tfjs'],
  },
  channel: {
    label: 'Channel',
    help: 'Remove whole output channels (and the matching inputs of the next layer): a smaller, faster dense model. With calibration data, the layers after are refitted by least squares to keep their outputs.',
    calib: 'optional',
    options: ['sparsity', 'scope', 'roundTo', 'importance'],
    formats: ['onnx'],
  },
  heads: {
    label: 'Attention heads',
    help: 'Remove whole heads of multi-head attention (their query/key/value columns and output-projection rows): a smaller, faster transformer; the kept heads compute exactly what they did. With calibration data the output projection is refitted by least squares.',
    calib: 'optional',
    options: ['sparsity', 'scope', 'importance'],
    formats: ['onnx'],
  },
  wanda: {
    label: 'Wanda',
    help: 'Score weights by |weight| × activation norm measured on calibration data; no weight update.',
    calib: true,
    options: ['sparsity', 'optionalPattern', 'comparison', 'sequential', 'protectFirstLast', 'minParameters'],
    formats: ['onnx'],
  },
  sparsegpt: {
    label: 'SparseGPT',
    help: 'Prune and update the remaining weights to compensate (second-order, from calibration data).',
    calib: true,
    options: ['sparsity', 'optionalPattern', 'sequential', 'protectFirstLast', 'minParameters'],
    formats: ['onnx'],
  },
};

/** Whether a prune step cannot run without calibration data (channels or heads ranked by activation energy, Wanda, SparseGPT). */
export function pruneNeedsCalib(p: Pick<PruneStep, 'method' | 'importance'>): boolean {
  return PRUNE_INFO[p.method].calib === true || ((p.method === 'channel' || p.method === 'heads') && p.importance === 'activation');
}

/** A step's options with the schema's defaults filled in (api/recipe.ts stays the one source). */
/** The prune methods that apply to a model format (TF.js: magnitude and N:M). */
export function pruneMethodsFor(format: 'onnx' | 'tfjs'): PruneMethod[] {
  return (Object.keys(PRUNE_INFO) as PruneMethod[]).filter((m) => PRUNE_INFO[m].formats.includes(format));
}

export function defaultQuantize(method: QuantizeMethod): QuantizeStep {
  return QuantizeStep.parse({ method });
}
export function defaultPrune(method: PruneMethod): PruneStep {
  const step = PruneStep.parse({ method });
  if (method === 'nm') step.pattern = '2:4';
  return step;
}

export const BLOCK_SIZES = [16, 32, 64, 128, 256] as const;

/** Whether a prune step's per-layer plan is applied: it goes with the unstructured methods, at layer scope, without N:M. */
export function planApplies(p: PruneStep): boolean {
  return p.layerSparsity !== undefined && PLAN_METHODS.includes(p.method) && p.scope === 'layer' && !p.pattern;
}

/**
 * A step being edited (an id for keyed lists, and the step's options). The view's exclusions apply to
 * every step unless `skipExclusions` (a second step that quantizes exactly the layers the first left
 * float: mixed int4/int8).
 */
export type UiStep = ({ id: number; kind: 'quantize'; quantize: QuantizeStep } | { id: number; kind: 'prune'; prune: PruneStep }) & { skipExclusions?: boolean };

/** The fields of a DataRef (SPEC §4) being edited: a path, a preprocessing preset and a sample count. */
export interface DataDraft {
  path: string;
  preprocess: (typeof PRESETS)[number] | '';
  count: number | null;
}
