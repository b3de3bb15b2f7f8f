import { int8Saturation } from '../../../native-models/runtimes/cpu-int8.ts';
import { WhittleError } from '../../../api/errors.ts';
import type { Model, Node } from '../../../native-models/ir/model.ts';
import type { Tensor } from '../../../native-models/ir/tensor.ts';
import type { TensorRange } from '../../calibrate/index.ts';
import { tensorBytes, type Pass, type PassContext, type PassReport } from '../pass.ts';
import { ALREADY_QUANTIZED, checkFinite, findConstantWeight } from './constant-weight.ts';
import { isExcluded, NameAllocator, removeUnread } from './graph-edit.ts';
import { foldBatchNorms } from './fold-batch-norm.ts';
import { emitQdq } from './static-qdq-emit.ts';
import type { PrecomputedWeight } from './static-gptq.ts';
import { foldConvBiasAdds, foldMatMulBiasAdds } from './static-qdq-fold.ts';
import { prepareOpset } from './static-qdq-opset.ts';
import { CLIPPING_OPS, COMPUTE_OPS, DEFAULT_STATIC_OP_TYPES, planStaticQdq, SHARED_PARAM_OPS } from './static-qdq-plan.ts';

export { DEFAULT_STATIC_OP_TYPES } from './static-qdq-plan.ts';

/**
 * Static int8 quantization in the QDQ format (SPEC §8, issue 3 item 2): activations get
 * QuantizeLinear → DequantizeLinear from calibration ranges, weights are stored int8 with only a
 * DequantizeLinear, biases int32 on the accumulator's scale. The graph is laid out so onnxruntime's
 * CPU EP fuses it into QLinearConv, QLinearMatMul / MatMulIntegerToFloat, QLinearAdd, QGemm...
 */
export interface StaticQdqOptions {
  /** Calibrated ranges by tensor name (core/calibrate). */
  ranges: Map<string, TensorRange>;
  /**
   * Activation type (asymmetric), default uint8. On x86 onnxruntime fuses int8 activations only after
   * converting them to uint8, which it does only for tensors with one reader (a warning names the rest).
   */
  activationType?: 'uint8' | 'int8';
  /** Weights are int8, symmetric ([-127, 127], zero point 0). */
  weightType?: 'int8';
  /**
   * Weights in 7 bits ([-64, 64], still int8): onnxruntime's reduce_range, for x86 CPUs without VNNI
   * whose u8×s8 kernels saturate 8-bit weights (native-models/runtimes/cpu-int8.ts). Unset: as this
   * CPU needs.
   */
  reduceRange?: boolean | undefined;
  /** One scale per output channel (Conv 0, ConvTranspose 1, Gemm 0 if transB else 1, MatMul 1). */
  perChannel?: boolean;
  /**
   * Node names or op types left float; their neighbours get Q/DQ boundaries. A float Conv/Gemm
   * between quantized neighbours reads a per-axis DequantizeLinear so that onnxruntime's
   * WeightBiasQuantization does not quantize its weight behind the user's back.
   */
  exclude?: string[];
  /** Op types to quantize (default DEFAULT_STATIC_OP_TYPES). */
  opTypes?: readonly string[];
  /** int8 weight values chosen by GPTQ (static-gptq.ts), by stored weight name; the rest are rounded to nearest. */
  weightValues?: ReadonlyMap<string, PrecomputedWeight> | undefined;
  /**
   * Filled with each quantized compute node and the name its output had in the float graph (after
   * bias-Add folding, before the rewrite renames it): what bias correction compares against.
   */
  computeOutputs?: Map<Node, string> | undefined;
}

const KNOWN_OPS = new Set<string>([...COMPUTE_OPS, ...SHARED_PARAM_OPS, ...CLIPPING_OPS]);

export const staticQdqPass: Pass<StaticQdqOptions> = {
  name: 'quantize-static-qdq',
  run: async (model, options, ctx) => quantizeStaticQdq(model, options, ctx),
};

export function quantizeStaticQdq(model: Model, options: StaticQdqOptions, ctx: PassContext): PassReport {
  const activationType = options.activationType ?? 'uint8';
  const perChannel = options.perChannel ?? false;
  const reduceRange = options.reduceRange ?? int8Saturation().saturates;
  const exclude = options.exclude ?? [];
  checkOptions(model, options, activationType);
  const warnings: string[] = [];
  const warn = (m: string) => { warnings.push(m); ctx.warn(m); };
  const g = model.graph;
  const bytesBefore = tensorBytes(model);
  const signatures = new Map(g.nodes.map((n) => [n, signature(n)]));

  for (const e of exclude) {
    if (!g.nodes.some((n) => isExcluded(n, [e]))) warn(`--exclude ${e}: matches no node name, op type or output name in the main graph`);
  }
  const opTypes = new Set(options.opTypes ?? DEFAULT_STATIC_OP_TYPES);
  for (const op of opTypes) if (!KNOWN_OPS.has(op)) warn(`op type ${op} has no static QDQ form onnxruntime fuses; it stays float`);
  if (opTypes.has('ConvTranspose') && g.nodes.some((n) => n.opType === 'ConvTranspose')) {
    // checked with onnxruntime 1.30: DQ → ConvTranspose → Q stays as it is on the CPU EP
    warn('ConvTranspose: onnxruntime\'s CPU EP has no fused int8 kernel for it; quantized, it runs in float between Q/DQ (slower than fp32 there; for EPs that consume QDQ)');
  }
  const excludedNodes = g.nodes.filter((n) => isExcluded(n, exclude));
  const eligible = (n: Node, asOp = n.opType) => n.domain === '' && opTypes.has(asOp) && !isExcluded(n, exclude);

  // before anything changes: a failed pass must not leave a half-rewritten model behind
  checkConstantsFinite(model, eligible);
  ctx.progress('prepare graph', 0, 1);
  const names = new NameAllocator(model);
  const opset = prepareOpset(model, perChannel, names);
  if (opset.keptBecause) warn(`${opset.keptBecause}; per-tensor QDQ still works, but MaxPool and friends stay float between their Q/DQ pairs`);
  const batchNorms = foldBatchNormsFor(model, exclude, opTypes, names);
  const folded = [...foldConvBiasAdds(g, eligible, names), ...foldMatMulBiasAdds(g, eligible, names)];
  ctx.checkpoint();

  ctx.progress('prepare graph', 1, 1);
  const plan = planStaticQdq(g, {
    ranges: options.ranges,
    activationType,
    perChannel,
    opTypes,
    isExcluded: (n) => isExcluded(n, exclude),
  });
  // an already-quantized model skips every node next to its Q/DQ pairs: one warning for all of them
  const readQuantized = plan.skipped.filter((s) => s.reason.endsWith(ALREADY_QUANTIZED));
  for (const s of plan.skipped) if (!readQuantized.includes(s)) warn(`${s.node.label} (${s.node.opType}) left float: ${s.reason}`);
  if (readQuantized.length) {
    const named = readQuantized.slice(0, 5).map((s) => `${s.node.label} (${s.node.opType})`).join(', ');
    warn(`${readQuantized.length} node(s) left float: they read values that are ${ALREADY_QUANTIZED}: ${named}${readQuantized.length > 5 ? ', …' : ''}`);
  }
  if (activationType === 'int8') {
    // checked with onnxruntime 1.30 on x86: QDQS8ToU8 converts a Q/DQ pair only when one DQ reads
    // the Q, and int8 Conv is not fused there, so every branching tensor leaves its readers float
    const readers = g.consumers();
    const branching = plan.tensors.filter((t) => (readers.get(t)?.length ?? 0) > 1);
    if (branching.length > 0) warn(`int8 activations: onnxruntime's x86 CPU EP fuses them only after turning each Q/DQ pair into uint8, which it does only for tensors with one reader; ${branching.length} quantized tensor(s) here have several (${branching.slice(0, 3).join(', ')}) and the ops reading them will run float there — prefer uint8 for the CPU EP`);
  }
  if (plan.nodes.every((p) => p.kind !== 'compute')) warn('no node was quantized (nothing eligible had what static QDQ needs)');
  for (const sub of model.graphs().slice(1)) {
    if (sub.nodes.some((n) => n.domain === '' && opTypes.has(n.opType))) {
      warn(`subgraph ${sub.name || '(unnamed)'}: ops inside If/Loop/Scan bodies are not quantized`);
      break;
    }
  }
  ctx.checkpoint();

  for (const p of plan.nodes) if (p.kind === 'compute' && p.node.outputs[0]) options.computeOutputs?.set(p.node, p.node.outputs[0]);
  const emitted = emitQdq(g, plan, {
    activationType,
    names,
    axisDq: (model.opsetVersion('') ?? 1) >= 13,
    weightValues: options.weightValues,
    reduceRange,
    step: (done, total) => {
      ctx.checkpoint();
      ctx.progress('quantize weights', done, total);
    },
  });
  for (const w of emitted.warnings) warn(w);
  // values chosen for a weight the plan then stored otherwise (left float, per-tensor where they
  // were chosen per channel…) are dropped: say so rather than let GPTQ look applied
  const unused = [...(options.weightValues?.keys() ?? [])].filter((name) => !emitted.chosenWeights.has(name));
  if (unused.length > 0) warn(`${unused.length} weight(s) kept round-to-nearest values instead of the chosen ones (not quantized, or stored with another granularity than they were chosen for): ${unused.slice(0, 4).join(', ')}${unused.length > 4 ? ', …' : ''}`);
  const unreadNodes = new Set<Node>(emitted.unreadNodes);
  const unreadNames = new Set<string>(emitted.unreadNames);
  for (const f of folded) {
    for (const n of f.unreadNodes) unreadNodes.add(n);
    for (const n of f.unreadNames) unreadNames.add(n);
  }
  removeUnread(model, { nodes: unreadNodes, names: unreadNames });

  const nodesAfter = new Set(g.nodes);
  const added = g.nodes.filter((n) => !signatures.has(n)).length;
  const removed = [...signatures.keys()].filter((n) => !nodesAfter.has(n)).length;
  const rewritten = g.nodes.filter((n) => signatures.has(n) && signatures.get(n) !== signature(n)).length;
  const quantizedOps: Record<string, number> = {};
  for (const p of plan.nodes) quantizedOps[p.node.opType] = (quantizedOps[p.node.opType] ?? 0) + 1;

  return {
    pass: staticQdqPass.name,
    nodesChanged: added + removed + rewritten,
    bytesBefore,
    bytesAfter: tensorBytes(model),
    excluded: [...excludedNodes.map((n) => n.label), ...plan.skipped.map((s) => s.node.label)],
    warnings,
    details: {
      activationType,
      weightType: 'int8',
      reduceRange,
      perChannel,
      qdqPairs: emitted.qdqPairs,
      dequantizers: emitted.dequantizers,
      quantizedNodes: plan.nodes.length,
      quantizedOps,
      foldedBiasAdds: folded.map((f) => f.add.label),
      foldedBatchNorms: batchNorms,
      removedActivations: emitted.removedActivations,
      ...(options.weightValues ? { chosenWeights: emitted.chosenWeights.size } : {}),
      skipped: plan.skipped.map((s) => ({ node: s.node.label, reason: s.reason })),
      opset: { from: opset.from, to: opset.to, rewritten: opset.rewritten },
    },
  };
}

/**
 * Folds every BatchNormalization that follows a Conv the static pass would quantize into it
 * (fold-batch-norm.ts) and returns the folded nodes' labels. Quantization steps call it before
 * calibrating, so that ranges, GPTQ's statistics and bias correction all see the folded graph; the
 * pass calls it again for callers that did not (a no-op when nothing is left to fold).
 */
export function foldBatchNormsFor(model: Model, exclude: readonly string[], opTypes: ReadonlySet<string> = new Set(DEFAULT_STATIC_OP_TYPES), names = new NameAllocator(model)): string[] {
  if (!opTypes.has('Conv')) return [];
  return foldBatchNorms(model, names, (n) => !isExcluded(n, [...exclude])).map((f) => f.batchNorm.label);
}

function checkOptions(model: Model, o: StaticQdqOptions, activationType: string): void {
  const where = model.path ? `${model.path}: ` : '';
  if (!(o.ranges instanceof Map) || o.ranges.size === 0) {
    throw new WhittleError('BAD_USAGE', `${where}static quantization needs calibration ranges (--calib DATA); none were given`);
  }
  if (activationType !== 'uint8' && activationType !== 'int8') {
    throw new WhittleError('BAD_USAGE', `--activation-type ${activationType}: static QDQ takes uint8 or int8`);
  }
  if (o.weightType !== undefined && o.weightType !== 'int8') {
    throw new WhittleError('BAD_USAGE', `weight type ${String(o.weightType)}: static QDQ stores weights as int8`);
  }
}

/** What a node reads, writes and is configured with: a changed signature is a rewritten node. */
function signature(n: Node): string {
  const attrs = n.attributes.map((a) => `${a.name}=${typeof a.value === 'bigint' || typeof a.value === 'number' ? String(a.value) : a.type}`);
  return JSON.stringify([n.opType, n.inputs, n.outputs, attrs]);
}

/**
 * NaN or ±Inf in a weight, bias or constant operand of a node the pass would quantize is an error
 * naming the node (it would quantize to garbage). Each stored tensor is read once.
 */
function checkConstantsFinite(model: Model, eligible: (n: Node) => boolean): void {
  const g = model.graph;
  const producers = g.producers();
  const checked = new Set<Tensor>();
  for (const n of g.nodes) {
    if (!eligible(n)) continue;
    for (const name of n.inputs) {
      const c = name ? findConstantWeight(g, name, producers) : null;
      if (!c || 'problem' in c || !c.source.isFloat || checked.has(c.source)) continue;
      checked.add(c.source);
      checkFinite(c.source.toFloat32(), n, c.sourceName, model.path);
    }
  }
}
