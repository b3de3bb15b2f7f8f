import { DataType } from '../../../native-models/ir/dtypes.ts';
import type { Graph, Model, Node } from '../../../native-models/ir/model.ts';
import { addInitializer, intAttr, makeNode, type NameAllocator } from './graph-edit.ts';
import { ensureIrVersion, irVersionFor, opsetBlockers, requireOpset } from './opset.ts';

/**
 * Static QDQ wants opset 13: DequantizeLinear's `axis` (per-channel weights) is 13, and onnxruntime
 * runs MaxPool on uint8/int8 only from opset 12. Old exporters (CNTK's MNIST and Caffe2's SqueezeNet
 * are opset 7) use a few forms that opset 13 reads differently; the common ones have an exact
 * opset-13 spelling, which this file writes before the version is raised. Anything else stays a
 * blocker and opset.ts names it.
 */
export const QDQ_OPSET = 13;

/** True when `rewrite` below turns the node into a form that means the same at opset 13. */
function canRewrite(g: Graph, n: Node): boolean {
  switch (n.opType) {
    // inference ignores the ratio; a used mask changed type (float → bool) at 10
    case 'Dropout': return !n.outputs[1] || !isRead(g, n.outputs[1]);
    case 'Softmax': case 'LogSoftmax': case 'Hardmax': return true;
    case 'BatchNormalization': return n.attrInt('spatial', 1) === 1;
    case 'Clip': return true;
    case 'Squeeze': return true;
    default: return false;
  }
}

function isRead(g: Graph, name: string): boolean {
  return g.nodes.some((m) => m.inputs.includes(name)) || g.outputs.some((o) => o.name === name);
}

/**
 * Rewrites one blocking node into its opset-13 form; returns the nodes that replace it. Callers
 * checked canRewrite first.
 */
function rewrite(g: Graph, n: Node, names: NameAllocator): Node[] {
  const drop = (attr: string) => { n.attributes = n.attributes.filter((a) => a.name !== attr); };
  switch (n.opType) {
    case 'Dropout':
      drop('ratio');
      n.outputs = n.outputs.slice(0, 1);
      return [n];
    case 'BatchNormalization':
      drop('spatial');
      return [n];
    case 'Clip': {
      // Clip-6 clamps to attributes (defaults ±float max); from 11 they are optional inputs
      const lo = n.attr('min') ? n.attrFloat('min', -3.4028234663852886e38) : null;
      const hi = n.attr('max') ? n.attrFloat('max', 3.4028234663852886e38) : null;
      drop('min');
      drop('max');
      const inputs = [n.inputs[0]!, '', ''];
      if (lo !== null) inputs[1] = scalarInit(g, names, `${n.label}_min`, lo);
      if (hi !== null) inputs[2] = scalarInit(g, names, `${n.label}_max`, hi);
      while (inputs.length > 1 && inputs[inputs.length - 1] === '') inputs.pop();
      n.inputs = inputs;
      return [n];
    }
    case 'Squeeze': {
      const axes = n.attrInts('axes')!;
      drop('axes');
      const name = names.fresh(`${n.label}_axes`);
      addInitializer(g, name, DataType.INT64, [axes.length], BigInt64Array.from(axes, BigInt));
      n.inputs = [n.inputs[0]!, name];
      return [n];
    }
    default: return rewriteSoftmax(g, n, names);
  }
}

function scalarInit(g: Graph, names: NameAllocator, base: string, value: number): string {
  const name = names.fresh(base);
  addInitializer(g, name, DataType.FLOAT, [], Float32Array.of(value));
  return name;
}

/**
 * Before 13 Softmax flattens its input to 2-D at `axis` and normalises over everything after it;
 * from 13 it normalises along one axis. Flatten → Softmax(axis −1) → Reshape back is the old
 * meaning, exactly, for any shape.
 */
function rewriteSoftmax(g: Graph, n: Node, names: NameAllocator): Node[] {
  const axis = n.attrInt('axis', 1);
  const x = n.inputs[0]!;
  const y = n.outputs[0]!;
  const flat = names.fresh(`${x}_flattened`);
  const normed = names.fresh(`${y}_2d`);
  const out: Node[] = [makeNode('Flatten', [x], [flat], names.fresh(`${n.label}_flatten`), '', [intAttr('axis', axis)])];
  n.attributes = n.attributes.filter((a) => a.name !== 'axis');
  n.attributes.push(intAttr('axis', -1));
  n.inputs = [flat];
  n.outputs = [normed];
  out.push(n);
  const shape = staticShape(g, x);
  let shapeName: string;
  if (shape) {
    shapeName = names.fresh(`${y}_shape`);
    addInitializer(g, shapeName, DataType.INT64, [shape.length], BigInt64Array.from(shape, BigInt));
  } else {
    shapeName = names.fresh(`${x}_shape`);
    out.push(makeNode('Shape', [x], [shapeName], names.fresh(`${n.label}_shape`)));
  }
  out.push(makeNode('Reshape', [normed, shapeName], [y], names.fresh(`${n.label}_reshape`)));
  return out;
}

function staticShape(g: Graph, name: string): number[] | null {
  const t = g.valueType(name);
  if (!t || t.kind !== 'tensor' || !t.shape) return null;
  return t.shape.every((d): d is number => typeof d === 'number' && d > 0) ? t.shape : null;
}

export interface OpsetOutcome {
  from: number;
  to: number;
  /** Nodes rewritten into their opset-13 spelling. */
  rewritten: string[];
  /** Why the opset was left below 13 (per-tensor only), or null. */
  keptBecause: string | null;
}

/**
 * Raises the default-domain opset to 13 when it is lower, rewriting the forms that would change
 * meaning. Per-channel needs 13 outright (UNSUPPORTED otherwise, naming the op in the way);
 * per-tensor QDQ works from opset 10, so a model at 10–12 that cannot be raised keeps its opset
 * and the caller hears why (MaxPool then stays float between its Q/DQ pairs).
 */
export function prepareOpset(model: Model, perChannel: boolean, names: NameAllocator): OpsetOutcome {
  const entry = model.opsets.find((o) => o.domain === '' || o.domain === 'ai.onnx');
  const from = entry?.version ?? 1;
  const outcome: OpsetOutcome = { from, to: from, rewritten: [], keptBecause: null };
  if (from >= QDQ_OPSET) {
    ensureIrVersion(model, irVersionFor(from));
    return outcome;
  }
  const why = perChannel ? 'per-channel static quantization (DequantizeLinear axis)' : 'static QDQ quantization';
  // opset.ts refuses models older than 7 outright: ask it before rewriting anything
  if (from < 7) requireOpset(model, QDQ_OPSET, why);
  const blockers = opsetBlockers(model, from, QDQ_OPSET);
  const graphOf = new Map<Node, Graph>();
  for (const g of model.graphs()) for (const n of g.nodes) graphOf.set(n, g);
  const stuck = blockers.filter((n) => !canRewrite(graphOf.get(n)!, n));
  if (stuck.length > 0 && !perChannel && from >= 10) {
    outcome.keptBecause = `opset ${from} kept: ${stuck.slice(0, 3).map((n) => `${n.label} (${n.opType})`).join(', ')} would change meaning at opset ${QDQ_OPSET}`;
    ensureIrVersion(model, irVersionFor(from));
    return outcome;
  }
  if (stuck.length === 0) {
    for (const n of blockers) {
      const g = graphOf.get(n)!;
      const at = g.nodes.indexOf(n);
      g.nodes.splice(at, 1, ...rewrite(g, n, names));
      outcome.rewritten.push(n.label);
    }
  }
  // throws UNSUPPORTED naming what is left in the way
  requireOpset(model, QDQ_OPSET, why);
  outcome.to = QDQ_OPSET;
  return outcome;
}
