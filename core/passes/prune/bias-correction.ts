/**
 * Bias correction after pruning (an addition to the published methods, used by any of them on
 * request): zeroing weights shifts each output's mean by Σ_j (W − Ŵ)_rj·E[x_j], and in a CNN whose
 * inputs come out of ReLUs (all ≥ 0) those shifts do not cancel — they add up layer after layer.
 * Adding the shift back to the output's bias keeps every output's mean over the calibration data
 * where it was (the same idea as the bias correction of post-training quantization). It costs one
 * vector per layer; the means come from the calibration statistics the pass streams anyway.
 *
 * Where the correction goes: a Conv's bias B (added when the Conv has none), a Gemm's C (broadcast to
 * one value per output when it was a scalar), the constant of the Add that follows a MatMul (when it
 * is a per-output bias), or else a new Add after the layer. A bias another node also reads is copied,
 * not changed.
 */
import { DataType } from '../../../native-models/ir/dtypes.ts';
import type { Graph, Model, Node } from '../../../native-models/ir/model.ts';
import { Tensor } from '../../../native-models/ir/tensor.ts';
import { makeNode, NameAllocator } from '../quantize/graph-edit.ts';
import type { GroupStats, LayerMatrix } from './layer-inputs.ts';
import { writeFloat32 } from './prunable.ts';

/** Per output (rows of all groups, in order): Σ_j (W − Ŵ)_rj · mean_j over the calibration rows. */
export function outputMeanShift(layer: LayerMatrix, stats: GroupStats[], before: Float64Array, after: Float64Array): Float64Array {
  const { k, rowsPerGroup } = layer;
  const shift = new Float64Array(layer.groups * rowsPerGroup);
  for (let g = 0; g < layer.groups; g++) {
    const st = stats[g]!;
    if (st.rows === 0) continue;
    for (let r = 0; r < rowsPerGroup; r++) {
      const row = g * rowsPerGroup + r;
      const off = row * k;
      let s = 0;
      for (let j = 0; j < k; j++) {
        const d = before[off + j]! - after[off + j]!;
        if (d !== 0) s += d * st.sum[j]!;
      }
      shift[row] = s / st.rows;
    }
  }
  return shift;
}

/** How a layer's correction was stored. */
export type BiasTarget = 'bias' | 'new-bias' | 'add';

/** A Gemm's alpha and beta (1 for the other ops). */
function gemmScales(layer: LayerMatrix): { alpha: number; beta: number } {
  const node = layer.weight.node;
  return layer.op === 'Gemm' ? { alpha: node.attrFloat('alpha', 1), beta: node.attrFloat('beta', 1) } : { alpha: 1, beta: 1 };
}

/** The layer's own bias input (Conv B [M]; Gemm C whose last dimension is N or 1), when it can take a shift of n values. */
function ownBias(layer: LayerMatrix, n: number): Tensor | null {
  const { node, graph } = layer.weight;
  const existing = layer.op === 'MatMul' ? undefined : node.inputs[2];
  if (!existing || gemmScales(layer).beta === 0) return null;
  const t = graph.constant(existing);
  const dims = t?.dims ?? [];
  const last = dims.length === 0 ? 1 : dims[dims.length - 1]!;
  const fits = t && t.isFloat && (layer.op === 'Conv' ? dims.length === 1 && last === n : (last === n || last === 1));
  return fits ? t : null;
}

/** The Add right after the layer whose constant holds one value per output channel (1 elsewhere): the layer's bias in CNTK's and TF's Convs and every MatMul. */
function followingBias(layer: LayerMatrix, n: number): { add: Node; slot: number; t: Tensor } | null {
  const { node, graph } = layer.weight;
  if (layer.op !== 'MatMul' && node.inputs[2]) return null;
  const spatial = layer.op === 'Conv' ? layer.weight.shape.length - 2 : 0;
  const out = node.outputs[0]!;
  const readers = graph.nodes.filter((x) => x.inputs.includes(out));
  if (readers.length !== 1 || graph.outputs.some((o) => o.name === out)) return null;
  const add = readers[0]!;
  if (add.opType !== 'Add' || (add.domain !== '' && add.domain !== 'ai.onnx') || add.inputs.length !== 2 || add.inputs[0] === add.inputs[1]) return null;
  const slot = add.inputs[0] === out ? 1 : 0;
  const t = graph.constant(add.inputs[slot]!);
  if (!t || !t.isFloat || t.dataType !== layer.weight.tensor.dataType) return null;
  // right-aligned broadcasting: the channel axis sits `spatial` places before the constant's last
  const at = t.dims.length - 1 - spatial;
  if (at < 0 || t.dims[at] !== n || t.dims.some((d, i) => i !== at && d !== 1)) return null;
  return { add, slot, t };
}

/**
 * True when the layer already has a bias a shift can go into without a new tensor or node (its B or
 * C, or the per-channel Add after it): what channel pruning, which slices existing tensors only, needs.
 */
export function hasOutputBias(layer: LayerMatrix): boolean {
  const n = layer.groups * layer.rowsPerGroup;
  return ownBias(layer, n) !== null || followingBias(layer, n) !== null;
}

/**
 * Adds `shift` (one value per output channel) to the layer's output: see the module comment for
 * where it goes. Returns where it went.
 */
export function addToOutputBias(model: Model, layer: LayerMatrix, rawShift: Float64Array, names: NameAllocator): BiasTarget {
  const { node, graph } = layer.weight;
  const dtype = layer.weight.tensor.dataType;
  const n = rawShift.length;
  // Gemm: Y = alpha·A·B + beta·C
  const { alpha, beta } = gemmScales(layer);
  const shift = alpha === 1 ? rawShift : rawShift.map((v) => v * alpha);
  // output channels run along axis 1 of a Conv's output ([N, M, spatial...]), along the last axis otherwise
  const spatial = layer.op === 'Conv' ? layer.weight.shape.length - 2 : 0;
  const own = ownBias(layer, n);
  if (own) {
    const dims = own.dims;
    const inC = beta === 1 ? shift : shift.map((v) => v / beta);
    const values = broadcastAdd(own.toFloat32(), dims, inC);
    replaceConstant(model, graph, node, 2, own, values, dims.length === 0 ? [n] : [...dims.slice(0, -1), n], names);
    return 'bias';
  }
  const existing = layer.op === 'MatMul' ? undefined : node.inputs[2];
  if (!existing) {
    const following = followingBias(layer, n);
    if (following) {
      const values = following.t.toFloat32();
      for (let c = 0; c < n; c++) values[c] = values[c]! + shift[c]!;
      replaceConstant(model, graph, following.add, following.slot, following.t, values, [...following.t.dims], names);
      return 'bias';
    }
    if (layer.op === 'Conv' || (layer.op === 'Gemm' && (model.opsetVersion('') ?? 1) >= 11)) {
      const name = names.fresh(`${layer.weight.weightName}_bias`);
      newInitializer(model, graph, name, dtype, [n], Float32Array.from(shift));
      while (node.inputs.length < 2) node.inputs.push('');
      node.inputs[2] = name;
      if (layer.op === 'Gemm') node.setAttr('beta', 1, 1); // FLOAT: C counts once
      return 'new-bias';
    }
  }
  insertAdd(model, graph, node, shift, [n, ...Array<number>(spatial).fill(1)], dtype, names);
  return 'add';
}

/** `values` (shape `dims`, last dimension n or 1) plus `shift` along the last dimension, as [..., n]. */
function broadcastAdd(values: Float32Array, dims: number[], shift: Float64Array): Float32Array {
  const n = shift.length;
  const last = dims.length === 0 ? 1 : dims[dims.length - 1]!;
  const outer = values.length / last;
  const out = new Float32Array(outer * n);
  for (let o = 0; o < outer; o++) for (let i = 0; i < n; i++) out[o * n + i] = values[o * last + (last === 1 ? 0 : i)]! + shift[i]!;
  return out;
}

/** Sets input `slot` of `node` to the new values: in place when only this node reads an initializer of this graph, else as a copy. */
function replaceConstant(model: Model, graph: Graph, node: Node, slot: number, t: Tensor, values: Float32Array, dims: number[], names: NameAllocator): void {
  const name = node.inputs[slot]!;
  let readers = 0;
  for (const g of model.graphs()) for (const x of g.nodes) for (const i of x.inputs) if (i === name) readers++;
  const isOutput = model.graphs().some((g) => g.outputs.some((o) => o.name === name));
  if (readers === 1 && !isOutput && graph.initializers.get(name) === t && sameShape(t.dims, dims) && !listedAsInput(model, graph, name)) {
    writeFloat32(t, values);
    t.modified = true;
    return;
  }
  const fresh = names.fresh(`${name}_corrected`);
  newInitializer(model, graph, fresh, t.dataType, dims, values);
  node.inputs[slot] = fresh;
}

/** An initializer also listed as a graph input is an overridable default from IR 4 on: leave it be. */
function listedAsInput(model: Model, graph: Graph, name: string): boolean {
  return model.irVersion >= 4 && graph.inputs.some((v) => v.name === name);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** A new initializer in `dtype` (listed among the graph inputs too where IR < 4 requires it). */
function newInitializer(model: Model, graph: Graph, name: string, dtype: number, dims: number[], values: Float32Array): Tensor {
  const zero = dtype === DataType.DOUBLE ? new Float64Array(values.length) : dtype === DataType.FLOAT ? new Float32Array(values.length) : new Uint16Array(values.length);
  const t = Tensor.fromTypedArray(name, dtype, dims, zero);
  writeFloat32(t, values);
  t.modified = true;
  graph.initializers.set(name, t);
  if (model.irVersion < 4 && graph === model.graph && graph.inputs.some((v) => graph.initializers.has(v.name))) {
    graph.inputs.push({ name, type: { kind: 'tensor', elemType: dtype, shape: [...dims] }, extra: {} });
  }
  return t;
}

/** Renames the node's output and adds `Add(output', shift)` under the old name right after it. */
function insertAdd(model: Model, graph: Graph, node: Node, shift: Float64Array, dims: number[], dtype: number, names: NameAllocator): void {
  const out = node.outputs[0]!;
  const pre = names.fresh(`${out}_before_bias_correction`);
  const bias = names.fresh(`${out}_bias_correction`);
  newInitializer(model, graph, bias, dtype, dims, Float32Array.from(shift));
  node.outputs[0] = pre;
  const add = makeNode('Add', [pre, bias], [out], names.fresh(`${node.name || out}_bias_correction`));
  graph.nodes.splice(graph.nodes.indexOf(node) + 1, 0, add);
}
