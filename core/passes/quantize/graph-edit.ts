import type { Graph, Model, Node } from '../../../native-models/ir/model.ts';
import { AttrType, Node as IrNode } from '../../../native-models/ir/model.ts';
import { DataType } from '../../../native-models/ir/dtypes.ts';
import { Tensor, type ComputedSource, type TypedArray } from '../../../native-models/ir/tensor.ts';

/**
 * Small graph edits the quantization passes share: fresh names, exclusion matching, new nodes and
 * initializers, and removing the constants a rewrite left unread.
 */

/** Hands out names no graph of the model uses yet (values and nodes share one namespace here). */
export class NameAllocator {
  private taken = new Set<string>();
  constructor(model: Model) {
    for (const g of model.graphs()) {
      for (const v of [...g.inputs, ...g.outputs, ...g.valueInfo]) this.taken.add(v.name);
      for (const name of g.initializers.keys()) this.taken.add(name);
      for (const n of g.nodes) {
        if (n.name) this.taken.add(n.name);
        for (const x of [...n.inputs, ...n.outputs]) if (x) this.taken.add(x);
      }
    }
  }
  /** `base` itself when free, else `base_1`, `base_2`...: deterministic for the same model. */
  fresh(base: string): string {
    let name = base;
    for (let i = 1; this.taken.has(name); i++) name = `${base}_${i}`;
    this.taken.add(name);
    return name;
  }
}

/**
 * A node is excluded when its name, its op type, or — for the many exported models whose nodes
 * have no name — its first output's name (or the label `Op(output)` that inspect shows) is listed.
 */
export function isExcluded(node: Node, exclude: readonly string[] | undefined): boolean {
  if (!exclude || exclude.length === 0) return false;
  return exclude.includes(node.opType) || (node.name !== '' && exclude.includes(node.name)) ||
    (node.outputs[0] !== undefined && exclude.includes(node.outputs[0])) || exclude.includes(node.label);
}

export function makeNode(opType: string, inputs: string[], outputs: string[], name: string, domain = '', attributes: IrNode['attributes'] = []): Node {
  return new IrNode({ name, opType, domain, inputs, outputs, attributes });
}

export function intAttr(name: string, value: number): IrNode['attributes'][number] {
  return { name, type: AttrType.INT, value: BigInt(value), extra: {} };
}

export function castNode(input: string, output: string, to: number, name: string): Node {
  return makeNode('Cast', [input], [output], name, '', [intAttr('to', to)]);
}

export function addInitializer(graph: Graph, name: string, dataType: number, dims: number[], data: TypedArray): Tensor {
  const t = Tensor.fromTypedArray(name, dataType, dims, data);
  t.modified = true;
  graph.initializers.set(name, t);
  return t;
}

/** addInitializer without the copy: the graph takes `data` over, so the caller must not change it afterwards. */
export function adoptInitializer(graph: Graph, name: string, dataType: number, dims: number[], data: TypedArray): Tensor {
  const t = new Tensor({ name, dataType, dims, source: { kind: 'inline', bytes: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) } });
  t.modified = true;
  graph.initializers.set(name, t);
  return t;
}

/** An initializer whose bytes are computed when they are asked for (the writer streams them; see ComputedSource). */
export function addComputedInitializer(graph: Graph, name: string, dataType: number, dims: number[], source: ComputedSource): Tensor {
  const t = new Tensor({ name, dataType, dims, source });
  t.modified = true;
  graph.initializers.set(name, t);
  return t;
}

export function addFloatInitializer(graph: Graph, name: string, dims: number[], values: ArrayLike<number>): Tensor {
  return addInitializer(graph, name, DataType.FLOAT, dims, Float32Array.from(values));
}

/** Every value name some node (in any graph) reads, plus every graph's outputs. */
export function namesReadAnywhere(model: Model): Set<string> {
  const read = new Set<string>();
  for (const g of model.graphs()) {
    for (const n of g.nodes) for (const i of n.inputs) if (i) read.add(i);
    for (const o of g.outputs) read.add(o.name);
  }
  return read;
}

/**
 * After a rewrite, drops the nodes and constants in `candidates` that nothing reads any more (the
 * float weight, the Reshape that presented it, that Reshape's shape constant), repeating until no
 * more fall away. Only candidates are touched: dead code the model came with stays as it was.
 */
export function removeUnread(model: Model, candidates: { nodes: Set<Node>; names: Set<string> }): number {
  let removed = 0;
  for (let changed = true; changed;) {
    changed = false;
    const read = namesReadAnywhere(model);
    for (const g of model.graphs()) {
      const keep = g.nodes.filter((n) => !(candidates.nodes.has(n) && n.outputs.every((o) => !o || !read.has(o))));
      if (keep.length !== g.nodes.length) {
        for (const n of g.nodes) if (!keep.includes(n)) for (const i of n.inputs) if (i) candidates.names.add(i);
        removed += g.nodes.length - keep.length;
        g.nodes = keep;
        changed = true;
      }
      for (const name of [...candidates.names]) {
        if (read.has(name) || !g.initializers.has(name)) continue;
        g.initializers.delete(name);
        // IR < 4 lists initializers among the inputs; a stale entry would become a required input
        g.inputs = g.inputs.filter((v) => v.name !== name);
        g.valueInfo = g.valueInfo.filter((v) => v.name !== name);
        changed = true;
      }
    }
  }
  return removed;
}

/** Replaces `node` in its graph by `replacement` (in that order), keeping the nodes topologically sorted. */
export function replaceNode(graph: Graph, node: Node, replacement: Node[]): void {
  const at = graph.nodes.indexOf(node);
  if (at < 0) throw new Error(`node ${node.label} is not in graph ${graph.name}`);
  graph.nodes.splice(at, 1, ...replacement);
}

/**
 * Default-domain nodes a pass may rewrite, in every graph, with each graph's producer map built
 * once and only when asked for.
 */
export function nodeCandidates(model: Model, accept: (n: Node) => boolean): { candidates: { g: Graph; n: Node }[]; producersOf: (g: Graph) => Map<string, Node> } {
  const candidates = model.graphs().flatMap((g) => g.nodes.filter((n) => accept(n) && n.domain === '').map((n) => ({ g, n })));
  const producers = new Map<Graph, Map<string, Node>>();
  return { candidates, producersOf: (g) => producers.get(g) ?? producers.set(g, g.producers()).get(g)! };
}
