import { AttrType, type Graph, type Node } from '../../../../native-models/ir/model.ts';
import { DataType } from '../../../../native-models/ir/dtypes.ts';
import { Tensor, type TypedArray } from '../../../../native-models/ir/tensor.ts';
import type { Edit } from './analyze.ts';
import { keptPositions, layoutLength, type Layout } from './groups.ts';

/**
 * Applies the edits once the kept channels are known: slices stored tensors along their channel
 * axis, sets depthwise `group`, Split sizes and Reshape widths, and drops stale value_info.
 */

export type KeptOf = (source: number) => Set<number> | null;

/** A copy of `tensor` with only `positions` along `axis`. */
export function sliceAlong(tensor: Tensor, axis: number, positions: number[]): { data: TypedArray; dims: number[] } {
  const src = tensor.typed();
  const dims = tensor.dims;
  let inner = 1;
  for (let i = axis + 1; i < dims.length; i++) inner *= dims[i]!;
  const n = dims[axis]!;
  const outer = tensor.elementCount / (n * inner);
  const Ctor = src.constructor as new (length: number) => TypedArray;
  const out = new Ctor(outer * positions.length * inner);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < positions.length; j++) {
      const from = (o * n + positions[j]!) * inner;
      const to = (o * positions.length + j) * inner;
      // typed arrays of one kind: set() of a subarray copies without conversion
      (out as Float32Array).set((src as Float32Array).subarray(from, from + inner), to);
    }
  }
  const newDims = [...dims];
  newDims[axis] = positions.length;
  return { data: out, dims: newDims };
}

/** The tensor a node's input reads, made private to this (node, input) when anything else reads it too. */
export function ownTensor(graph: Graph, node: Node, input: number, fresh: (base: string) => string, created: string[]): Tensor {
  const name = node.inputs[input]!;
  const t = graph.constant(name)!;
  let readers = 0;
  for (const n of graph.nodes) for (const i of n.inputs) if (i === name) readers++;
  for (const n of graph.nodes) for (const g of n.subgraphs()) if (g.outerReferences().has(name)) readers++;
  if (readers <= 1 && !graph.outputs.some((o) => o.name === name)) return t;
  const copy = new Tensor({ name: fresh(`${name}_pruned`), dataType: t.dataType, dims: [...t.dims], source: { kind: 'inline', bytes: Uint8Array.prototype.slice.call(t.bytes()) } });
  copy.modified = true;
  graph.initializers.set(copy.name, copy);
  created.push(copy.name);
  node.inputs[input] = copy.name;
  return copy;
}

function keptCount(layout: Layout, kept: KeptOf): number {
  return keptPositions(layout, 1, kept).length;
}

export function applyEdits(graph: Graph, edits: Edit[], kept: KeptOf, fresh: (base: string) => string): { changed: Set<Node>; created: string[] } {
  const changed = new Set<Node>();
  const created: string[] = [];
  for (const e of edits) {
    switch (e.kind) {
      case 'slice': {
        const positions = keptPositions(e.layout, e.block, kept);
        const t = graph.constant(e.node.inputs[e.input]!);
        if (!t) throw new Error(`${e.node.label}: input ${e.input} is not stored`);
        if (positions.length === t.dims[e.axis]) break;
        if (layoutLength(e.layout) * e.block !== t.dims[e.axis]) throw new Error(`${e.node.label}: input ${e.input} has ${t.dims[e.axis]} positions on axis ${e.axis}, the layout ${layoutLength(e.layout) * e.block}`);
        const own = ownTensor(graph, e.node, e.input, fresh, created);
        const { data, dims } = sliceAlong(own, e.axis, positions);
        own.setData(data, { dims });
        changed.add(e.node);
        break;
      }
      case 'group': {
        const n = keptCount(e.layout, kept);
        if (n !== e.node.attrInt('group', 1)) { e.node.setAttr('group', AttrType.INT, BigInt(n)); changed.add(e.node); }
        break;
      }
      case 'split': {
        const sizes = e.layouts.map((l) => keptCount(l, kept));
        if (e.node.inputs[1]) {
          const own = ownTensor(graph, e.node, 1, fresh, created);
          own.setData(BigInt64Array.from(sizes, BigInt), { dataType: DataType.INT64, dims: [sizes.length] });
        } else e.node.setAttr('split', AttrType.INTS, sizes.map(BigInt));
        changed.add(e.node);
        break;
      }
      case 'reshape': {
        const own = ownTensor(graph, e.node, 1, fresh, created);
        const sizes = Array.from(own.typed() as BigInt64Array);
        const block = Number(sizes[e.dim]) / layoutLength(e.layout);
        sizes[e.dim] = BigInt(block * keptCount(e.layout, kept));
        own.setData(BigInt64Array.from(sizes), { dims: [2] });
        changed.add(e.node);
        break;
      }
    }
  }
  return { changed, created };
}

/** Drops value_info of values whose channels changed (runtimes re-infer them) and refreshes initializer inputs (IR < 4 lists them). */
export function refreshShapes(graph: Graph, touched: Set<string>, created: string[]): void {
  graph.valueInfo = graph.valueInfo.filter((v) => !touched.has(v.name));
  const listed = new Set(graph.inputs.map((v) => v.name));
  for (const v of graph.inputs) {
    const t = graph.initializers.get(v.name);
    if (t && v.type?.kind === 'tensor') v.type = { ...v.type, shape: [...t.dims] };
  }
  // initializers copied for a private slice are listed too when the graph lists the others
  if ([...graph.initializers.keys()].some((n) => listed.has(n))) {
    for (const name of created) {
      const t = graph.initializers.get(name)!;
      graph.inputs.push({ name, type: { kind: 'tensor', elemType: t.dataType, shape: [...t.dims] }, extra: {} });
    }
  }
}
