import { Tensor } from './tensor.ts';

/** A dimension: a size, a symbolic name (dim_param), or unknown. */
export type Dim = number | string | null;

export type ValueType =
  | { kind: 'tensor'; elemType: number; shape: Dim[] | null }
  | { kind: 'other'; proto: Record<string, unknown> }; // sequences, maps, optionals: passed through

export interface ValueInfo {
  name: string;
  type: ValueType | null;
  /** doc_string, metadata_props and unknown fields of the ValueInfoProto, kept for writing. */
  extra: Record<string, unknown>;
}

export const AttrType = {
  UNDEFINED: 0, FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, GRAPH: 5, FLOATS: 6, INTS: 7, STRINGS: 8,
  TENSORS: 9, GRAPHS: 10, SPARSE_TENSOR: 11, SPARSE_TENSORS: 12, TYPE_PROTO: 13, TYPE_PROTOS: 14,
} as const;

export class SparseTensor {
  constructor(
    public values: Tensor,
    public indices: Tensor,
    public dims: number[],
    public extra: Record<string, unknown> = {},
  ) {}
}

export type AttrValue =
  | number | bigint | Uint8Array | Tensor | Graph | SparseTensor | Record<string, unknown>
  | number[] | bigint[] | Uint8Array[] | Tensor[] | Graph[] | SparseTensor[] | Record<string, unknown>[]
  | undefined;

export interface Attribute {
  name: string;
  type: number;
  value: AttrValue;
  extra: Record<string, unknown>;
}

export class Node {
  name: string;
  opType: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  attributes: Attribute[];
  extra: Record<string, unknown>;

  constructor(init: { name?: string; opType: string; domain?: string; inputs: string[]; outputs: string[]; attributes?: Attribute[]; extra?: Record<string, unknown> }) {
    this.name = init.name ?? '';
    this.opType = init.opType;
    this.domain = init.domain ?? '';
    this.inputs = init.inputs;
    this.outputs = init.outputs;
    this.attributes = init.attributes ?? [];
    this.extra = init.extra ?? {};
  }

  /** A name for messages: the node name, or its op and first output when it has none. */
  get label(): string {
    return this.name || `${this.opType}(${this.outputs[0] ?? '?'})`;
  }

  attr(name: string): Attribute | undefined {
    return this.attributes.find((a) => a.name === name);
  }

  attrInt(name: string, fallback: number): number {
    const v = this.attr(name)?.value;
    return typeof v === 'bigint' ? Number(v) : typeof v === 'number' ? v : fallback;
  }

  attrInts(name: string): number[] | undefined {
    const v = this.attr(name)?.value;
    return Array.isArray(v) ? (v as (bigint | number)[]).map(Number) : undefined;
  }

  attrFloat(name: string, fallback: number): number {
    const v = this.attr(name)?.value;
    return typeof v === 'number' ? v : fallback;
  }

  attrString(name: string): string | undefined {
    const v = this.attr(name)?.value;
    return v instanceof Uint8Array ? new TextDecoder().decode(v) : undefined;
  }

  setAttr(name: string, type: number, value: AttrValue): void {
    const existing = this.attr(name);
    if (existing) {
      existing.type = type;
      existing.value = value;
    } else this.attributes.push({ name, type, value, extra: {} });
  }

  /** Graphs held in attributes (If branches, Loop and Scan bodies). */
  subgraphs(): Graph[] {
    const out: Graph[] = [];
    for (const a of this.attributes) {
      if (a.value instanceof Graph) out.push(a.value);
      else if (Array.isArray(a.value)) for (const g of a.value) if (g instanceof Graph) out.push(g);
    }
    return out;
  }
}

export class Graph {
  name = '';
  nodes: Node[] = [];
  inputs: ValueInfo[] = [];
  outputs: ValueInfo[] = [];
  valueInfo: ValueInfo[] = [];
  initializers = new Map<string, Tensor>();
  sparseInitializers: SparseTensor[] = [];
  /** doc_string, quantization_annotation, metadata_props, unknown fields. */
  extra: Record<string, unknown> = {};
  /** The graph whose node holds this one as an attribute (null for the main graph). */
  parent: Graph | null = null;

  /** name → the node that produces it. */
  producers(): Map<string, Node> {
    const map = new Map<string, Node>();
    for (const n of this.nodes) for (const o of n.outputs) if (o) map.set(o, n);
    return map;
  }

  /** name → nodes that read it directly (subgraph reads count for the node holding the subgraph). */
  consumers(): Map<string, Node[]> {
    const map = new Map<string, Node[]>();
    const add = (name: string, n: Node) => {
      const list = map.get(name);
      if (list) { if (!list.includes(n)) list.push(n); } else map.set(name, [n]);
    };
    for (const n of this.nodes) {
      for (const i of n.inputs) if (i) add(i, n);
      for (const g of n.subgraphs()) for (const free of g.outerReferences()) add(free, n);
    }
    return map;
  }

  /** Names this graph (and its subgraphs) read that are defined in an enclosing graph. */
  outerReferences(): Set<string> {
    const defined = new Set<string>([...this.inputs.map((v) => v.name), ...this.initializers.keys(), ...this.sparseInitializers.map((s) => s.values.name)]);
    for (const n of this.nodes) for (const o of n.outputs) if (o) defined.add(o);
    const free = new Set<string>();
    for (const n of this.nodes) {
      for (const i of n.inputs) if (i && !defined.has(i)) free.add(i);
      for (const g of n.subgraphs()) for (const f of g.outerReferences()) if (!defined.has(f)) free.add(f);
    }
    return free;
  }

  /**
   * Nodes in an order where every node comes after the producers of its inputs (Kahn's algorithm,
   * stable: ties keep file order). Throws if the graph has a cycle.
   */
  topologicalOrder(): Node[] {
    const producers = this.producers();
    const pending = new Map<Node, number>();
    const dependents = new Map<Node, Node[]>();
    for (const n of this.nodes) {
      const deps = new Set<Node>();
      const reads = [...n.inputs, ...n.subgraphs().flatMap((g) => [...g.outerReferences()])];
      for (const i of reads) {
        const p = i ? producers.get(i) : undefined;
        if (p && p !== n) deps.add(p);
      }
      pending.set(n, deps.size);
      for (const d of deps) (dependents.get(d) ?? dependents.set(d, []).get(d)!).push(n);
    }
    const order: Node[] = [];
    const ready = this.nodes.filter((n) => pending.get(n) === 0);
    const position = new Map(this.nodes.map((n, i) => [n, i]));
    while (ready.length > 0) {
      const n = ready.shift()!;
      order.push(n);
      const released: Node[] = [];
      for (const d of dependents.get(n) ?? []) {
        const left = pending.get(d)! - 1;
        pending.set(d, left);
        if (left === 0) released.push(d);
      }
      if (released.length) {
        ready.push(...released);
        ready.sort((a, b) => position.get(a)! - position.get(b)!);
      }
    }
    if (order.length !== this.nodes.length) {
      const stuck = this.nodes.filter((n) => !order.includes(n)).slice(0, 3).map((n) => n.label);
      throw new Error(`graph ${this.name || '(main)'} has a cycle through ${stuck.join(', ')}`);
    }
    return order;
  }

  /** The constant value of a name if it is an initializer or a Constant node's output, here or in an enclosing graph. */
  constant(name: string): Tensor | null {
    for (let g: Graph | null = this; g; g = g.parent) {
      const init = g.initializers.get(name);
      if (init) return init;
      const producer = g.nodes.find((n) => n.outputs[0] === name);
      if (producer) return producer.opType === 'Constant' && producer.domain === '' ? constantNodeTensor(producer) : null;
      if (g.inputs.some((v) => v.name === name)) return null;
    }
    return null;
  }

  valueType(name: string): ValueType | null {
    for (let g: Graph | null = this; g; g = g.parent) {
      const v = g.inputs.find((x) => x.name === name) ?? g.outputs.find((x) => x.name === name) ?? g.valueInfo.find((x) => x.name === name);
      if (v) return v.type;
      const t = g.initializers.get(name);
      if (t) return { kind: 'tensor', elemType: t.dataType, shape: [...t.dims] };
    }
    return null;
  }
}

/** The tensor a Constant node carries in its `value` attribute (value_float etc. are not weights). */
export function constantNodeTensor(node: Node): Tensor | null {
  const v = node.attr('value')?.value;
  return v instanceof Tensor ? v : null;
}

export interface OpsetImport {
  domain: string;
  version: number;
}

export class Model {
  irVersion = 8;
  opsets: OpsetImport[] = [];
  producerName = '';
  producerVersion = '';
  domain = '';
  /** int64 in the file: kept exact. */
  modelVersion = 0n;
  docString = '';
  graph = new Graph();
  /** metadata_props, training_info, functions, configuration and unknown fields, written back unchanged. */
  extra: Record<string, unknown> = {};
  /** The file the model was read from (external data locations are relative to its folder). */
  path: string | null = null;

  /** Every metadata_props entry (ONNX's free-form key → value strings), in file order. */
  metadataEntries(): [string, string][] {
    const entries = (this.extra['metadata_props'] as { key?: string; value?: string }[] | undefined) ?? [];
    return entries.map((e) => [e.key ?? '', e.value ?? '']);
  }

  /** A metadata_props entry, or undefined. */
  metadata(key: string): string | undefined {
    return this.metadataEntries().find(([k]) => k === key)?.[1];
  }

  /** Sets a metadata_props entry, replacing one with the same key. */
  setMetadata(key: string, value: string): void {
    const entries = (this.extra['metadata_props'] as { key?: string; value?: string }[] | undefined) ?? [];
    this.extra['metadata_props'] = [...entries.filter((e) => e.key !== key), { key, value }];
  }

  opsetVersion(domain = ''): number | undefined {
    const d = domain === 'ai.onnx' ? '' : domain;
    return this.opsets.find((o) => (o.domain === 'ai.onnx' ? '' : o.domain) === d)?.version;
  }

  /** The main graph and every subgraph, depth first. */
  graphs(): Graph[] {
    const out: Graph[] = [];
    const visit = (g: Graph) => {
      out.push(g);
      for (const n of g.nodes) for (const s of n.subgraphs()) visit(s);
    };
    visit(this.graph);
    return out;
  }

  /** Every stored tensor a pass may change: initializers and Constant node values, in all graphs. */
  *weights(): Generator<{ tensor: Tensor; graph: Graph; node: Node | null }> {
    for (const g of this.graphs()) {
      for (const t of g.initializers.values()) yield { tensor: t, graph: g, node: null };
      for (const n of g.nodes) {
        if (n.opType === 'Constant' && n.domain === '') {
          const t = constantNodeTensor(n);
          if (t) yield { tensor: t, graph: g, node: n };
        }
      }
    }
  }
}
