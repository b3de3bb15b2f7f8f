import { z } from 'zod';

/**
 * A recipe: a model, a list of compression steps (each one pass, SPEC §2) and an evaluation.
 * The CLI's `quantize`/`prune` flags build the same step objects, so a command line and a recipe
 * step run the same code. Paths are relative to the recipe file.
 */
export const PRESETS = ['none', 'unit', 'mnist', 'torch', 'caffe', 'tf', 'imagenet', 'tf-square', 'unit-stretch'] as const;

export const DataRef = z.object({
  path: z.string().min(1),
  preprocess: z.enum(PRESETS).optional(),
  limit: z.number().int().nonnegative().optional(),
  offset: z.number().int().nonnegative().optional(),
  size: z.number().int().positive().optional(),
  layout: z.enum(['nchw', 'nhwc']).optional(),
}).strict();
export type DataRef = z.infer<typeof DataRef>;

/** uint8 and uint16 are TF.js weight quantization (model.json inputs); fp16 serves both formats. */
export const QUANTIZE_METHODS = ['dynamic', 'static', 'fp16', 'int4', 'int8-weight', 'uint8', 'uint16'] as const;
export const CALIBRATION_METHODS = ['minmax', 'percentile', 'entropy', 'mse'] as const;

export const QuantizeStep = z.object({
  method: z.enum(QUANTIZE_METHODS),
  /** static: calibration data (SPEC §4). */
  calib: DataRef.optional(),
  calibration: z.enum(CALIBRATION_METHODS).default('minmax'),
  /** static: calibration samples (default 256). */
  samples: z.number().int().positive().optional(),
  percentile: z.number().gt(50).lte(100).optional(),
  /** static minmax: onnxruntime's exponential moving average of per-batch ranges (constant 0.01). */
  movingAverage: z.boolean().optional(),
  /** static percentile/entropy/mse: activation ranges symmetric around zero (±t). */
  symmetricRanges: z.boolean().optional(),
  /** static percentile/entropy/mse: histogram bins per tensor (default 2048; 8 bytes a bin). */
  bins: z.number().int().min(128).max(65536).optional(),
  perChannel: z.boolean().default(false),
  activationType: z.enum(['uint8', 'int8']).default('uint8'),
  weightType: z.enum(['int8', 'uint8']).default('int8'),
  /**
   * static and dynamic: int8 weights in 7 bits ([-64, 64]), onnxruntime's reduce_range — on x86 CPUs
   * without VNNI its u8×s8 kernels saturate 8-bit weights. Unset: on when the CPU quantizing is such
   * a CPU (the report says which it chose and why).
   */
  reduceRange: z.boolean().optional(),
  /** int4 / int8-weight: block size, a power of two from 16 to 256. */
  blockSize: z.number().int().refine((b) => b >= 16 && b <= 256 && (b & (b - 1)) === 0, 'a power of two from 16 to 256').default(32),
  /** Symmetric weights; unset: each method's default (dynamic int8: symmetric; weight-only: asymmetric blocks). */
  symmetric: z.boolean().optional(),
  /** int4 / int8-weight: round to nearest, or GPTQ (needs --calib; group size = block size). */
  algorithm: z.enum(['rtn', 'gptq']).default('rtn'),
  /** gptq: columns by decreasing Hessian diagonal, with static groups (MatMulNBits keeps its layout). */
  actOrder: z.boolean().default(false),
  /** gptq: dampening λ as a share of mean(diag H) (default 0.01). */
  percdamp: z.number().gte(0).lte(1).optional(),
  /** int4 / int8-weight: com.microsoft.MatMulNBits or opset-21 DequantizeLinear(block_size). */
  format: z.enum(['matmulnbits', 'dq']).default('matmulnbits'),
  /**
   * static: after quantizing, measure each Conv/Gemm output's channel means on the calibration data
   * in the float and the quantized model and add the difference to its int32 bias, upstream layers
   * first (empirical bias correction, as NNCF's; static-bias-correction.ts). One more pass over the
   * data per dependency level.
   */
  biasCorrection: z.boolean().default(false),
  /** Node names or op types left in float. */
  exclude: z.array(z.string().min(1)).default([]),
  /** fp16: graph inputs and outputs stay float32. */
  keepIoTypes: z.boolean().default(false),
  /** dynamic: also Conv (ConvInteger; usually slower than fp32 on CPU). */
  includeConv: z.boolean().default(false),
  /** int4 / int8-weight (matmulnbits format): also embedding tables, as com.microsoft.GatherBlockQuantized. */
  includeGather: z.boolean().default(false),
}).strict();
export type QuantizeStep = z.infer<typeof QuantizeStep>;

export const PRUNE_METHODS = ['magnitude', 'nm', 'channel', 'heads', 'wanda', 'sparsegpt'] as const;

/** The methods that take a per-layer sparsity plan (PruneStep.layerSparsity): the unstructured ones. */
export const PLAN_METHODS: readonly (typeof PRUNE_METHODS)[number][] = ['magnitude', 'wanda', 'sparsegpt'];

/** Node name → sparsity in [0, 1). */
const LayerSparsity = z.record(z.string().min(1), z.number().gte(0).lt(1));

export const PruneStep = z.object({
  method: z.enum(PRUNE_METHODS),
  /** Fraction of weights (for channel, of prunable channels; for heads, of each attention block's heads) removed: [0, 1). */
  sparsity: z.number().gte(0).lt(1).default(0.5),
  /** magnitude: each layer to the target, or one threshold across layers. */
  scope: z.enum(['layer', 'global']).default('layer'),
  /** nm (and wanda/sparsegpt with a pattern): N:M along the input dimension, N < M. */
  pattern: z.string().regex(/^\d+:\d+$/, 'N:M, e.g. 2:4').refine((p) => { const [n, m] = p.split(':').map(Number); return n! > 0 && n! < m!; }, 'N must be at least 1 and smaller than M').optional(),
  /** wanda / sparsegpt: calibration data. */
  calib: DataRef.optional(),
  samples: z.number().int().positive().optional(),
  /** channel: kept channel counts rounded to a multiple of this. */
  roundTo: z.number().int().positive().default(8),
  /** channel: how channels are ranked — their weights' norm, or (with calib) the output energy they give the next layers; heads: l2 (‖Wv,h‖·‖Wo,h‖) or activation. */
  importance: z.enum(['l1', 'l2', 'activation']).default('l2'),
  /**
   * wanda: which weights compete — 'row' (each output row, the paper's choice for LLM linear layers)
   * or 'layer' (the whole layer; better on the CNN fixtures: MNIST 70 %: 90.2 % vs 72.7 % top-1).
   */
  comparison: z.enum(['row', 'layer']).default('layer'),
  /** wanda / sparsegpt: statistics of each layer taken after the layers before it were pruned. */
  sequential: z.boolean().default(false),
  /**
   * wanda / sparsegpt, and magnitude / nm given calib: after pruning a layer, add Σ_j (W − Ŵ)_rj·mean(x_j)
   * to each output's bias so its mean over the calibration data is kept. Not part of the published
   * methods; off by default (it helps at moderate sparsity, not everywhere: see the README table).
   */
  biasCorrection: z.boolean().default(false),
  exclude: z.array(z.string().min(1)).default([]),
  protectFirstLast: z.boolean().default(false),
  minParameters: z.number().int().nonnegative().default(0),
  /**
   * magnitude (layer scope), wanda, sparsegpt (unstructured): a per-layer plan — node name →
   * sparsity, instead of `sparsity` for those layers (0 leaves a layer dense). What
   * `whittle analyze --for prune` recommends (`whittle prune --plan FILE`).
   */
  layerSparsity: LayerSparsity.optional(),
}).strict();
export type PruneStep = z.infer<typeof PruneStep>;

const PruneAnalysisPlan = z.object({
  for: z.literal('prune'),
  recommendation: z.object({ plan: z.array(z.object({ layer: z.string().min(1), sparsity: z.number().gte(0).lt(1) })).min(1) }),
});

/**
 * A per-layer sparsity plan (PruneStep.layerSparsity) from what a user has at hand: the plan itself
 * (node name → sparsity), a `whittle analyze --for prune` document, or a recorded run holding one
 * as its result (`experiments show --json`, the app's run). Null when it is none of these.
 */
export function sparsityPlanOf(doc: unknown): Record<string, number> | null {
  const plain = LayerSparsity.safeParse(doc);
  if (plain.success && Object.keys(plain.data).length > 0) return plain.data;
  const analysis = PruneAnalysisPlan.safeParse(doc);
  const run = analysis.success ? null : PruneAnalysisPlan.safeParse((doc as { result?: unknown } | null)?.result);
  const plan = analysis.success ? analysis.data : run?.success ? run.data : null;
  return plan ? Object.fromEntries(plan.recommendation.plan.map((p) => [p.layer, p.sparsity])) : null;
}

export const RecipeStep = z.union([z.object({ quantize: QuantizeStep }).strict(), z.object({ prune: PruneStep }).strict()]);
export type RecipeStep = z.infer<typeof RecipeStep>;

export const EvalSpec = z.object({
  data: DataRef.optional(),
  /** Compare with the recipe's input model (agreement, SQNR). */
  reference: z.boolean().default(true),
  ep: z.enum(['auto', 'cpu', 'webgpu', 'cuda']).default('cpu'),
  runs: z.number().int().positive().default(20),
  /**
   * ONNX: run the result in its own int8 arithmetic (`whittle eval --exact-int8`: graph optimizations
   * off, integer ops computed in float) — on x86 CPUs without VNNI onnxruntime's fused kernels
   * saturate 8-bit weights; the latency is then not the fused model's.
   */
  exactInt8: z.boolean().optional(),
}).strict();

export const Recipe = z.object({
  name: z.string().optional(),
  model: z.string().min(1),
  seed: z.number().int().default(0),
  steps: z.array(RecipeStep).min(1),
  eval: EvalSpec.optional(),
}).strict();
export type Recipe = z.infer<typeof Recipe>;
