import { closeSync, openSync, readSync } from 'node:fs';
import { WhittleError } from '../../../api/errors.ts';
import { DataType } from '../../../native-models/ir/dtypes.ts';
import type { Graph, Node } from '../../../native-models/ir/model.ts';
import type { Tensor, TensorSource } from '../../../native-models/ir/tensor.ts';

/**
 * A weight as the consuming node sees it. Exporters often store a weight in another shape and
 * present it through a Reshape or Transpose of the constant (CNTK's MNIST: [16,4,4,10] → Reshape
 * → [256,10]); quantizing the stored tensor along the wrong axis would be wrong, so we evaluate
 * that little constant chain and quantize the values in their final shape.
 */
export interface ConstantWeight {
  /** The stored tensor the chain starts from. */
  source: Tensor;
  sourceName: string;
  /** Shape-only nodes between the stored tensor and the consumer, in execution order. */
  chain: Node[];
  dims: number[];
}

/** The end of the reason a node reading a DequantizeLinear's output is left float with. */
export const ALREADY_QUANTIZED = 'already quantized (DequantizeLinear)';

const SHAPE_ONLY = new Set(['Reshape', 'Transpose', 'Identity', 'Squeeze', 'Unsqueeze', 'Flatten', 'Cast']);

/** Finds the stored tensor behind `name`, or says why the input is not a usable constant weight (null: not constant at all). */
export function findConstantWeight(graph: Graph, name: string, producers: Map<string, Node>): ConstantWeight | { problem: string } | null {
  const chain: Node[] = [];
  let current = name;
  for (let hops = 0; hops < 16; hops++) {
    const t = graph.constant(current);
    if (t) {
      chain.reverse();
      const dims = shapeThrough(graph, t.dims, chain);
      if (typeof dims === 'string') return { problem: dims };
      if (!isNumeric(t.dataType)) return { problem: `its weight ${current} is ${t.dtype}` };
      return { source: t, sourceName: current, chain, dims };
    }
    const p = producers.get(current);
    if (!p) return null;
    if (p.opType === 'DequantizeLinear') return { problem: `${p.inputs[0] && graph.constant(p.inputs[0]) ? 'its weight' : 'its input'} ${name} is ${ALREADY_QUANTIZED}` };
    if (!SHAPE_ONLY.has(p.opType) || p.domain !== '' || !p.inputs[0]) return null;
    chain.push(p);
    current = p.inputs[0];
  }
  return null;
}

/** The constant float table a Gather reads (an embedding), whatever its shape; null when its data is not one. */
export function gatherTable(graph: Graph, gather: Node, producers: Map<string, Node>): ConstantWeight | null {
  if (gather.opType !== 'Gather' || gather.domain !== '' || !gather.inputs[0] || !gather.inputs[1]) return null;
  const c = findConstantWeight(graph, gather.inputs[0], producers);
  return c && !('problem' in c) && c.source.dataType === DataType.FLOAT ? c : null;
}

function isNumeric(dt: number): boolean {
  return dt !== DataType.STRING && dt !== DataType.BOOL && dt !== DataType.UNDEFINED && dt !== DataType.COMPLEX64 && dt !== DataType.COMPLEX128;
}

function constInts(graph: Graph, name: string | undefined): number[] | null {
  if (!name) return null;
  const t = graph.constant(name);
  return t ? Array.from(t.toFloat32()) : null;
}

/** Output shape after each node of the chain; a string says why it cannot be followed. */
function shapeThrough(graph: Graph, dims: number[], chain: Node[]): number[] | string {
  let d = [...dims];
  for (const n of chain) {
    const next = step(graph, n, d);
    if (typeof next === 'string') return `${n.label} (${n.opType}): ${next}`;
    d = next.dims;
  }
  return d;
}

function step(graph: Graph, n: Node, d: number[]): { dims: number[]; perm?: number[] } | string {
  const size = d.reduce((a, b) => a * b, 1);
  switch (n.opType) {
    case 'Identity': return { dims: d };
    case 'Cast': {
      const to = n.attrInt('to', 0);
      return to === DataType.FLOAT ? { dims: d } : `casts to type ${to}, not float32`;
    }
    case 'Reshape': {
      const shape = constInts(graph, n.inputs[1]);
      if (!shape) return 'the shape is not a constant';
      const allowZero = n.attrInt('allowzero', 0) === 1;
      const out = shape.map((s, i) => (s === 0 && !allowZero ? d[i]! : s));
      const known = out.filter((s) => s !== -1).reduce((a, b) => a * b, 1);
      const fixed = out.map((s) => (s === -1 ? size / known : s));
      return fixed.reduce((a, b) => a * b, 1) === size && fixed.every(Number.isInteger) ? { dims: fixed } : `shape [${shape}] does not fit [${d}]`;
    }
    case 'Transpose': {
      const perm = n.attrInts('perm') ?? d.map((_, i) => d.length - 1 - i);
      return { dims: perm.map((p) => d[p]!), perm };
    }
    case 'Flatten': {
      let axis = n.attrInt('axis', 1);
      if (axis < 0) axis += d.length;
      const a = d.slice(0, axis).reduce((x, y) => x * y, 1);
      return { dims: [a, size / a] };
    }
    case 'Squeeze': {
      const axes = (n.attrInts('axes') ?? constInts(graph, n.inputs[1]) ?? d.flatMap((s, i) => (s === 1 ? [i] : []))).map((a) => (a < 0 ? a + d.length : a));
      return { dims: d.filter((_, i) => !axes.includes(i)) };
    }
    case 'Unsqueeze': {
      const raw = n.attrInts('axes') ?? constInts(graph, n.inputs[1]);
      if (!raw) return 'the axes are not constant';
      const rank = d.length + raw.length;
      const axes = raw.map((a) => (a < 0 ? a + rank : a));
      const out: number[] = [];
      let k = 0;
      for (let i = 0; i < rank; i++) out.push(axes.includes(i) ? 1 : d[k++]!);
      return { dims: out };
    }
    default: return 'not a shape-only op';
  }
}

/** The weight's values in its final shape (float32, row-major). */
export function materialise(graph: Graph, w: ConstantWeight): Float32Array {
  let values = w.source.toFloat32();
  let d = [...w.source.dims];
  for (const n of w.chain) {
    const s = step(graph, n, d);
    if (typeof s === 'string') throw new Error(`unreachable: ${s}`);
    if (s.perm) values = transpose(values, d, s.perm);
    d = s.dims;
  }
  return values;
}

/** General N-D transpose: out[i0..] = in[i_perm...]. */
export function transpose(values: Float32Array, dims: number[], perm: number[]): Float32Array {
  const rank = dims.length;
  const outDims = perm.map((p) => dims[p]!);
  const inStrides = new Array<number>(rank);
  for (let i = rank - 1, s = 1; i >= 0; i--) { inStrides[i] = s; s *= dims[i]!; }
  const stride = perm.map((p) => inStrides[p]!);
  const out = new Float32Array(values.length);
  const idx = new Array<number>(rank).fill(0);
  for (let o = 0; o < out.length; o++) {
    let src = 0;
    for (let i = 0; i < rank; i++) src += idx[i]! * stride[i]!;
    out[o] = values[src]!;
    for (let i = rank - 1; i >= 0; i--) {
      if (++idx[i]! < outDims[i]!) break;
      idx[i] = 0;
    }
  }
  return out;
}

/**
 * NaN or ±Inf in a weight would quantize to garbage (a NaN range gives scale NaN for the whole
 * tensor): the user must hear which node and which tensor, not get a silently broken model.
 */
export function checkFinite(values: ArrayLike<number>, node: Node, weight: string, file: string | null, offset = 0, total = values.length): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v)) {
      const where = file ? `${file}: ` : '';
      throw new WhittleError('BAD_INPUT', `${where}node ${node.label} (${node.opType}): weight ${weight} has ${Number.isNaN(v) ? 'NaN' : v > 0 ? '+Inf' : '-Inf'} at element ${offset + i} of ${total}; fix or retrain the model, or exclude the node (--exclude ${node.name || node.opType})`, file ? { file } : undefined);
    }
  }
}

/**
 * Float32 values of a stored tensor in pieces, without copying the whole tensor: an aligned inline
 * tensor comes as one view of the file buffer; an unaligned one, or external data, is copied
 * piece by piece into `scratch` (each piece valid until the next is asked for). Other dtypes come
 * converted, in one piece. Fresh multi-MiB buffers are what made quantization slow (a page fault per
 * 4 KiB on first touch, and a 64 MiB weight copied twice); one reused scratch costs nothing.
 * `pieceElements` (≤ scratch.length) sets how many elements a copied piece holds, so a caller can
 * ask for whole rows or blocks; the last piece may hold fewer.
 */
export function* float32Pieces(t: Tensor, scratch: Float32Array, pieceElements = scratch.length): Generator<{ values: Float32Array; offset: number }> {
  const n = t.elementCount;
  const source = t.source;
  if (t.dataType !== DataType.FLOAT || source.kind === 'strings' || source.kind === 'computed') {
    yield { values: t.toFloat32(), offset: 0 };
    return;
  }
  if (source.kind === 'inline' && source.bytes.byteOffset % 4 === 0) {
    yield { values: new Float32Array(source.bytes.buffer, source.bytes.byteOffset, n), offset: 0 };
    return;
  }
  const step = Math.max(1, Math.min(pieceElements, scratch.length));
  const dst = new Uint8Array(scratch.buffer, scratch.byteOffset, step * 4);
  const fd = source.kind === 'external' ? openSync(source.path, 'r') : null;
  try {
    for (let offset = 0; offset < n; offset += step) {
      const len = Math.min(step, n - offset);
      const bytes = len * 4;
      if (source.kind === 'inline') dst.set(source.bytes.subarray(offset * 4, offset * 4 + bytes));
      else {
        for (let done = 0; done < bytes;) {
          const got = readSync(fd!, dst, done, bytes - done, source.offset + offset * 4 + done);
          if (got === 0) throw new Error(`${source.path}: ended early while reading tensor ${t.name} (the file changed after the model was opened?)`);
          done += got;
        }
      }
      yield { values: scratch.subarray(0, len), offset };
    }
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

/**
 * Elements [from, from + count) of a stored float32 tensor's source, count ≤ scratch.length: a view
 * of an aligned inline tensor, else copied into `scratch` (external data is read through `fd`, open
 * on its file).
 */
export function float32Range(source: Extract<TensorSource, { kind: 'inline' | 'external' }>, fd: number | null, from: number, count: number, scratch: Float32Array): Float32Array {
  if (source.kind === 'inline') {
    const at = source.bytes.byteOffset + from * 4;
    if (at % 4 === 0) return new Float32Array(source.bytes.buffer, at, count);
    new Uint8Array(scratch.buffer, scratch.byteOffset, count * 4).set(source.bytes.subarray(from * 4, (from + count) * 4));
    return scratch.subarray(0, count);
  }
  const dst = new Uint8Array(scratch.buffer, scratch.byteOffset, count * 4);
  for (let done = 0; done < dst.length;) {
    const got = readSync(fd!, dst, done, dst.length - done, source.offset + from * 4 + done);
    if (got === 0) throw new Error(`${source.path}: ended early while reading ${source.length} bytes at offset ${source.offset} (the file changed after the model was opened?)`);
    done += got;
  }
  return scratch.subarray(0, count);
}

/** Whether the consumer sees the stored values in stored order (no Transpose in the chain). */
export function keepsOrder(w: ConstantWeight): boolean {
  return w.chain.every((n) => n.opType !== 'Transpose');
}

/** checkFinite over a stored tensor, streamed through `scratch` (no copy of the whole tensor). */
export function checkFiniteTensor(t: Tensor, scratch: Float32Array, node: Node, weight: string, file: string | null): void {
  for (const { values, offset } of float32Pieces(t, scratch)) {
    let bad = -1;
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      if (v - v !== 0) { bad = i; break; } // NaN or ±Infinity
    }
    if (bad >= 0) checkFinite([values[bad]!], node, weight, file, offset + bad, t.elementCount);
  }
}

/**
 * The float weight (input 1) of a MatMul/Gemm/Conv, or why there is none: the reason is what the
 * passes print when they skip the node.
 */
export function floatWeightOf(graph: Graph, node: Node, producers: Map<string, Node>): ConstantWeight | string {
  const wName = node.inputs[1];
  if (!node.inputs[0] || !wName) return 'it has no weight input';
  const w = findConstantWeight(graph, wName, producers);
  if (w === null) return `its input ${wName} is not a constant weight`;
  if ('problem' in w) return w.problem;
  if (w.source.dataType !== DataType.FLOAT && w.chain.every((n) => n.opType !== 'Cast')) return `its weight is ${w.source.dtype}, not float32`;
  return w;
}
