import { WhittleError } from '../../../api/errors.ts';
import type { Model, Node } from '../../../native-models/ir/model.ts';

/**
 * Raising a model's default-domain opset so that new ops (DynamicQuantizeLinear: 11, blocked
 * DequantizeLinear with int4: 21) are legal. Every node of the default domain then runs under the
 * new version, so this is only safe when no op in the model changed meaning or form in between.
 * onnxruntime's quantizer bumps the opset unconditionally; we refuse with the op that stands in the
 * way instead of writing a model that loads wrong or not at all.
 */

interface Break {
  /** The opset version whose schema no longer accepts (or reinterprets) the older node. */
  at: number;
  /** When given, the change only bites nodes for which this is true (`read`: every value some node or graph output reads). */
  when?: (n: Node, read: ReadonlySet<string>) => boolean;
}

const has = (attr: string) => (n: Node) => n.attr(attr) !== undefined;
const inputMissing = (i: number) => (n: Node) => !n.inputs[i];
const EXPERIMENTAL_REMOVED_AT_10 = ['Affine', 'ConstantFill', 'Crop', 'DynamicSlice', 'GivenTensorFill', 'ImageScaler', 'ParametricSoftplus', 'Scale', 'ScaledTanh'];
const REDUCE_18 = ['ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL1', 'ReduceL2', 'ReduceLogSum', 'ReduceLogSumExp', 'ReduceSumSquare'];

/** From the ONNX operator changelog: the versions where an op's old form stops meaning the same. */
const BREAKS: Record<string, Break[]> = {
  Upsample: [{ at: 9 }, { at: 10 }],
  Slice: [{ at: 10 }],
  TopK: [{ at: 10 }],
  // the mask output turned bool at 10: that matters only when something reads it
  Dropout: [{ at: 10, when: (n, read) => !!n.outputs[1] && read.has(n.outputs[1]) }, { at: 12, when: has('ratio') }],
  Scan: [{ at: 9 }],
  BatchNormalization: [{ at: 9, when: has('spatial') }],
  Pad: [{ at: 11 }],
  Clip: [{ at: 11, when: (n) => has('min')(n) || has('max')(n) }],
  Resize: [{ at: 11 }],
  Scatter: [{ at: 11 }],
  Split: [{ at: 13, when: has('split') }, { at: 18, when: inputMissing(1) }],
  Squeeze: [{ at: 13, when: has('axes') }],
  Unsqueeze: [{ at: 13 }],
  ReduceSum: [{ at: 13, when: has('axes') }],
  // before 13 these flatten to 2-D around `axis` (default 1); from 13 they act on one axis (default −1)
  Softmax: [{ at: 13, when: (n) => n.attrInt('axis', 1) !== -1 }],
  LogSoftmax: [{ at: 13, when: (n) => n.attrInt('axis', 1) !== -1 }],
  Hardmax: [{ at: 13, when: (n) => n.attrInt('axis', 1) !== -1 }],
  RoiAlign: [{ at: 16, when: (n) => !has('coordinate_transformation_mode')(n) }],
  DFT: [{ at: 20 }],
  GridSample: [{ at: 20, when: (n) => ['bilinear', 'bicubic'].includes(n.attrString('mode') ?? '') }],
  GroupNormalization: [{ at: 21 }],
  ...Object.fromEntries(REDUCE_18.map((op) => [op, [{ at: 18, when: has('axes') }]])),
  ...Object.fromEntries(EXPERIMENTAL_REMOVED_AT_10.map((op) => [op, [{ at: 10 }]])),
};

/** The IR version each opset first appeared with (onnx/onnx docs/Versioning.md). */
const IR_FOR_OPSET: [opset: number, ir: number][] = [[7, 3], [9, 4], [10, 5], [11, 6], [12, 7], [15, 8], [19, 9], [21, 10], [23, 11]];

export function irVersionFor(opset: number): number {
  let ir = 3;
  for (const [o, v] of IR_FOR_OPSET) if (opset >= o) ir = v;
  return ir;
}

/**
 * Raises the IR version. Crossing IR 4 also drops initializers from the graph inputs: before IR 4
 * every initializer had to be listed there and was still a constant; from IR 4 on a listed
 * initializer is an overridable default, which onnxruntime will not constant-fold or fuse (it warns
 * "appears in graph inputs and will not be treated as constant").
 */
export function ensureIrVersion(model: Model, version: number): void {
  if (model.irVersion >= version) return;
  if (model.irVersion < IR_INITIALIZERS_NOT_INPUTS && version >= IR_INITIALIZERS_NOT_INPUTS) {
    for (const g of model.graphs()) g.inputs = g.inputs.filter((v) => !g.initializers.has(v.name));
  }
  model.irVersion = version;
}

/** Nodes whose meaning would change if the default-domain opset went from `from` to `to`. */
export function opsetBlockers(model: Model, from: number, to: number): Node[] {
  const out: Node[] = [];
  const read = new Set<string>();
  for (const g of model.graphs()) {
    for (const n of g.nodes) for (const i of n.inputs) if (i) read.add(i);
    for (const o of g.outputs) read.add(o.name);
  }
  for (const g of model.graphs()) {
    for (const n of g.nodes) {
      if (n.domain !== '' && n.domain !== 'ai.onnx') continue;
      const breaks = Object.hasOwn(BREAKS, n.opType) ? BREAKS[n.opType]! : [];
      if (breaks.some((b) => b.at > from && b.at <= to && (!b.when || b.when(n, read)))) out.push(n);
    }
  }
  return out;
}

/**
 * Makes the default-domain opset at least `version` (and the IR version what that opset needs), or
 * throws UNSUPPORTED naming the nodes that prevent it. `why` says what needs the newer opset.
 */
export function requireOpset(model: Model, version: number, why: string): void {
  const entry = model.opsets.find((o) => o.domain === '' || o.domain === 'ai.onnx');
  const current = entry?.version ?? 1;
  if (current >= version) return;
  const fix = `re-export the model at opset ${version} or newer`;
  if (current < 7) {
    throw new WhittleError('UNSUPPORTED', `${model.path ?? 'model'}: ${why} needs opset ${version}; the model is at opset ${current}, too old to raise safely — ${fix}`);
  }
  const blockers = opsetBlockers(model, current, version);
  if (blockers.length > 0) {
    const names = blockers.slice(0, 5).map((n) => `${n.label} (${n.opType})`).join(', ');
    throw new WhittleError('UNSUPPORTED', `${model.path ?? 'model'}: ${why} needs opset ${version}, but the model is at opset ${current} and ${names}${blockers.length > 5 ? ` and ${blockers.length - 5} more` : ''} would change meaning if raised — ${fix}`);
  }
  if (entry) entry.version = version;
  else model.opsets.push({ domain: '', version });
  ensureIrVersion(model, irVersionFor(version));
}

/** Adds an opset import for a custom domain (com.microsoft for onnxruntime's contrib ops). */
export function ensureDomain(model: Model, domain: string, version: number): void {
  const entry = model.opsets.find((o) => o.domain === domain);
  if (!entry) model.opsets.push({ domain, version });
  else if (entry.version < version) entry.version = version;
}

/** Initializers that are not graph inputs need IR 4 (before it, every initializer was an input). */
export const IR_INITIALIZERS_NOT_INPUTS = 4;
