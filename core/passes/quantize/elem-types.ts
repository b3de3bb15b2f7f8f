import { DataType } from '../../../native-models/ir/dtypes.ts';
import { Graph, type Model, type Node } from '../../../native-models/ir/model.ts';
import { Tensor } from '../../../native-models/ir/tensor.ts';

/**
 * The element type of every value, per graph: declared types (inputs, outputs, value_info,
 * initializers, Constant values) first, then a forward pass with the rules below for the rest.
 * Only element types, not shapes: that is all a precision change needs to know. 0 = unknown.
 */
export class ElemTypes {
  private byGraph = new Map<Graph, Map<string, number>>();

  constructor(model: Model) {
    this.infer(model.graph, new Map());
  }

  /** The type of `name` as seen from `graph` (enclosing graphs included). */
  of(graph: Graph, name: string): number {
    for (let g: Graph | null = graph; g; g = g.parent) {
      const t = this.byGraph.get(g)?.get(name);
      if (t !== undefined) return t;
    }
    return 0;
  }

  private infer(g: Graph, seed: Map<string, number>): void {
    const types = new Map(seed);
    this.byGraph.set(g, types);
    const declare = (name: string, t: number) => { if (t && !types.has(name)) types.set(name, t); };
    for (const v of [...g.inputs, ...g.outputs, ...g.valueInfo]) if (v.type?.kind === 'tensor') declare(v.name, v.type.elemType);
    for (const [name, t] of g.initializers) declare(name, t.dataType);
    for (const s of g.sparseInitializers) declare(s.values.name, s.values.dataType);
    const typeOf = (name: string) => this.of(g, name);
    for (const n of g.nodes) {
      const outs = outputTypes(n, typeOf, (sub, subSeed) => {
        this.infer(sub, subSeed);
        return sub.outputs.map((o) => this.of(sub, o.name));
      });
      n.outputs.forEach((o, k) => { if (o) declare(o, outs[k] ?? 0); });
    }
  }
}

const BOOL_OUT = new Set(['Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'Not', 'And', 'Or', 'Xor', 'IsNaN', 'IsInf']);
const INT64_OUT = new Set(['Shape', 'Size', 'ArgMax', 'ArgMin', 'NonZero', 'NonMaxSuppression']);
/** Ops whose `dtype` attribute sets the output type, and the type when it is absent (0: the input's). */
const DTYPE_ATTR: Record<string, number> = { RandomNormal: DataType.FLOAT, RandomUniform: DataType.FLOAT, RandomNormalLike: 0, RandomUniformLike: 0, EyeLike: 0, Bernoulli: 0, Multinomial: DataType.INT32 };

export function constantValueType(n: Node): number {
  for (const a of n.attributes) {
    if (a.name === 'value' && a.value instanceof Tensor) return a.value.dataType;
    if (a.name === 'value_float' || a.name === 'value_floats') return DataType.FLOAT;
    if (a.name === 'value_int' || a.name === 'value_ints') return DataType.INT64;
    if (a.name === 'value_string' || a.name === 'value_strings') return DataType.STRING;
  }
  return 0;
}

type SubgraphTypes = (g: Graph, seed: Map<string, number>) => number[];

function outputTypes(n: Node, typeOf: (name: string) => number, sub: SubgraphTypes): number[] {
  const in0 = n.inputs[0] ? typeOf(n.inputs[0]) : 0;
  const all = (t: number) => n.outputs.map(() => t);
  if (n.domain !== '' && n.domain !== 'ai.onnx') return all(in0); // contrib ops mostly follow their input; declared types win anyway
  if (BOOL_OUT.has(n.opType)) return all(DataType.BOOL);
  if (INT64_OUT.has(n.opType)) return all(DataType.INT64);
  if (Object.hasOwn(DTYPE_ATTR, n.opType)) return all(n.attr('dtype') ? n.attrInt('dtype', 0) : DTYPE_ATTR[n.opType]! || in0);
  switch (n.opType) {
    case 'Cast': return all(n.attrInt('to', 0));
    case 'CastLike': return all(n.inputs[1] ? typeOf(n.inputs[1]) : 0);
    case 'Constant': return all(constantValueType(n));
    case 'ConstantOfShape': { const v = n.attr('value')?.value; return all(v instanceof Tensor ? v.dataType : DataType.FLOAT); }
    case 'TopK': case 'MaxPool': return [in0, DataType.INT64];
    case 'Unique': return [in0, DataType.INT64, DataType.INT64, DataType.INT64];
    case 'Dropout': return [in0, DataType.BOOL];
    case 'QuantizeLinear': return all(n.inputs[2] ? typeOf(n.inputs[2]) : DataType.UINT8);
    case 'DequantizeLinear': return all(n.inputs[1] ? typeOf(n.inputs[1]) : DataType.FLOAT);
    case 'DynamicQuantizeLinear': return [DataType.UINT8, DataType.FLOAT, DataType.UINT8];
    case 'MatMulInteger': case 'ConvInteger': return all(DataType.INT32);
    case 'QLinearConv': case 'QLinearMatMul': return all(n.inputs[7] ? typeOf(n.inputs[7]) : DataType.UINT8);
    case 'Where': return all(n.inputs[1] ? typeOf(n.inputs[1]) : 0);
    case 'OneHot': return all(n.inputs[2] ? typeOf(n.inputs[2]) : 0);
    case 'If': {
      const then = n.attr('then_branch')?.value;
      const els = n.attr('else_branch')?.value;
      const a = then instanceof Graph ? sub(then, new Map()) : [];
      if (els instanceof Graph) sub(els, new Map());
      return a;
    }
    case 'Loop': {
      const body = n.attr('body')?.value;
      if (!(body instanceof Graph)) return all(0);
      // body inputs: iteration number, condition, then the loop-carried values
      const seed = new Map<string, number>();
      body.inputs.forEach((v, k) => {
        const t = k === 0 ? DataType.INT64 : k === 1 ? DataType.BOOL : n.inputs[k] ? typeOf(n.inputs[k]!) : 0;
        if (t && !(v.type?.kind === 'tensor' && v.type.elemType)) seed.set(v.name, t);
      });
      return sub(body, seed).slice(1); // body outputs: condition, carried values, scan outputs
    }
    case 'Scan': {
      const body = n.attr('body')?.value;
      if (!(body instanceof Graph)) return all(0);
      const seed = new Map<string, number>();
      body.inputs.forEach((v, k) => { const t = n.inputs[k] ? typeOf(n.inputs[k]!) : 0; if (t && !(v.type?.kind === 'tensor' && v.type.elemType)) seed.set(v.name, t); });
      return sub(body, seed);
    }
    default: return all(in0);
  }
}
