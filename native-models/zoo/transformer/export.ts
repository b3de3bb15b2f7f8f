import { DataType } from '../../ir/dtypes.ts';
import { AttrType, Graph, Model, Node, type Attribute, type ValueInfo } from '../../ir/model.ts';
import { Tensor } from '../../ir/tensor.ts';
import { writeOnnxFile, type WriteReport } from '../../formats/onnx/index.ts';
import { toFloatScores } from '../../runtimes/host-tensor.ts';
import { createSession, runSession } from '../../runtimes/onnxruntime.ts';
import { LN_EPS, logSoftmaxAt, type Params, type TransformerSpec } from './model.ts';

/**
 * The transformer as an ONNX model built with the project's own IR and writer (opset 17, for
 * LayerNormalization): input `input_ids` int64 [batch, context], output `logits` float32
 * [batch, context, vocab]. Every linear layer is MatMul(x, W [K, N]) then Add(bias), so the
 * weight-only quantizer (MatMulNBits), GPTQ and the pruning passes all find its 13 weights
 * (q/k/v/o, fc1, fc2 per layer, and the output projection); the attention products Q·Kᵀ and P·V
 * are MatMuls of two activations, which those passes leave alone.
 */
export const OPSET = 17;
export const INPUT = 'input_ids';
export const OUTPUT = 'logits';

const ints = (name: string, v: number[]): Attribute => ({ name, type: AttrType.INTS, value: v.map(BigInt), extra: {} });
const int = (name: string, v: number): Attribute => ({ name, type: AttrType.INT, value: BigInt(v), extra: {} });
const float = (name: string, v: number): Attribute => ({ name, type: AttrType.FLOAT, value: v, extra: {} });

export function buildOnnx(spec: TransformerSpec, p: Params, meta: Record<string, string> = {}): Model {
  const { vocab: V, context: T, dModel: d, heads: H, ffn: f } = spec;
  const hd = d / H;
  const g = new Graph();
  g.name = 'char_transformer';
  const nodes: Node[] = [];
  const init = (name: string, dims: number[], data: Float32Array | BigInt64Array, type: number = DataType.FLOAT) => {
    g.initializers.set(name, Tensor.fromTypedArray(name, type, dims, data));
    return name;
  };
  const node = (opType: string, inputs: string[], output: string, attributes: Attribute[] = [], name = output) => {
    nodes.push(new Node({ name, opType, inputs, outputs: [output], attributes }));
    return output;
  };
  const linear = (x: string, w: Float32Array, b: Float32Array, k: number, n: number, name: string) => {
    const mm = node('MatMul', [x, init(`${name}.weight`, [k, n], w)], `${name}.matmul`, [], name);
    return node('Add', [mm, init(`${name}.bias`, [n], b)], `${name}.out`, [], `${name}.bias_add`);
  };
  const layerNorm = (x: string, gamma: Float32Array, beta: Float32Array, name: string) =>
    node('LayerNormalization', [x, init(`${name}.weight`, [d], gamma), init(`${name}.bias`, [d], beta)], `${name}.out`, [int('axis', -1), float('epsilon', LN_EPS)], name);

  init('shape.heads', [4], BigInt64Array.from([0n, 0n, BigInt(H), BigInt(hd)]), DataType.INT64);
  init('shape.merge', [3], BigInt64Array.from([0n, 0n, BigInt(d)]), DataType.INT64);
  init('attn.scale', [], Float32Array.of(1 / Math.sqrt(hd)));
  const mask = new Float32Array(T * T);
  for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) mask[i * T + j] = -1e9;
  init('attn.causal_mask', [T, T], mask);

  const tok = node('Gather', [init('wte', [V, d], p.wte), INPUT], 'embed.tokens', [int('axis', 0)]);
  let x = node('Add', [tok, init('wpe', [T, d], p.wpe)], 'embed.out', [], 'embed.positions');
  p.layers.forEach((L, i) => {
    const n = `h${i}`;
    const ln1 = layerNorm(x, L.ln1g, L.ln1b, `${n}.ln_1`);
    const heads = (w: Float32Array, b: Float32Array, proj: string, perm: number[]) => {
      const y = linear(ln1, w, b, d, d, `${n}.attn.${proj}`);
      const r = node('Reshape', [y, 'shape.heads'], `${n}.attn.${proj}.heads`);
      return node('Transpose', [r], `${n}.attn.${proj}.t`, [ints('perm', perm)]);
    };
    const q = heads(L.wq, L.bq, 'q_proj', [0, 2, 1, 3]);
    const kt = heads(L.wk, L.bk, 'k_proj', [0, 2, 3, 1]);
    const v = heads(L.wv, L.bv, 'v_proj', [0, 2, 1, 3]);
    const s = node('MatMul', [q, kt], `${n}.attn.scores`);
    const ss = node('Mul', [s, 'attn.scale'], `${n}.attn.scaled`);
    const sm = node('Add', [ss, 'attn.causal_mask'], `${n}.attn.masked`);
    const pr = node('Softmax', [sm], `${n}.attn.probs`, [int('axis', -1)]);
    const o = node('MatMul', [pr, v], `${n}.attn.context`);
    const ot = node('Transpose', [o], `${n}.attn.context.t`, [ints('perm', [0, 2, 1, 3])]);
    const om = node('Reshape', [ot, 'shape.merge'], `${n}.attn.merged`);
    const a = linear(om, L.wo, L.bo, d, d, `${n}.attn.o_proj`);
    const h = node('Add', [x, a], `${n}.attn.residual`);
    const ln2 = layerNorm(h, L.ln2g, L.ln2b, `${n}.ln_2`);
    const f1 = linear(ln2, L.w1, L.b1, d, f, `${n}.mlp.fc1`);
    const r = node('Relu', [f1], `${n}.mlp.relu`);
    const f2 = linear(r, L.w2, L.b2, f, d, `${n}.mlp.fc2`);
    x = node('Add', [h, f2], `${n}.mlp.residual`);
  });
  const lnf = layerNorm(x, p.lnfg, p.lnfb, 'ln_f');
  const mm = node('MatMul', [lnf, init('lm_head.weight', [d, V], p.wout)], 'lm_head.matmul', [], 'lm_head');
  node('Add', [mm, init('lm_head.bias', [V], p.bout)], OUTPUT, [], 'lm_head.bias_add');

  g.nodes = nodes;
  const info = (name: string, elemType: number, shape: (number | string)[]): ValueInfo => ({ name, type: { kind: 'tensor', elemType, shape }, extra: {} });
  g.inputs = [info(INPUT, DataType.INT64, ['batch', T])];
  g.outputs = [info(OUTPUT, DataType.FLOAT, ['batch', T, V])];
  const m = new Model();
  m.irVersion = 8;
  m.opsets = [{ domain: '', version: OPSET }];
  m.producerName = 'whittle';
  m.producerVersion = 'zoo/transformer';
  m.graph = g;
  if (Object.keys(meta).length) m.extra = { metadata_props: Object.entries(meta).map(([key, value]) => ({ key, value })) };
  m.docString = 'A character-level decoder-only transformer trained by whittle (native-models/zoo/transformer).';
  return m;
}

export function writeTransformer(spec: TransformerSpec, p: Params, path: string, meta: Record<string, string> = {}): WriteReport {
  return writeOnnxFile(buildOnnx(spec, p, meta), path, { externalData: false });
}

export interface PerplexityResult {
  perplexity: number;
  /** Mean negative log-likelihood, nats per character. */
  nll: number;
  tokens: number;
  seconds: number;
}

/**
 * Perplexity of an ONNX language model (this zoo's layout) on windows of tokens, run with
 * onnxruntime-node: exp of the mean cross-entropy over every position of every window.
 */
export async function onnxPerplexity(
  model: string, inputs: Int32Array, targets: Int32Array, context: number,
  opts: { batch?: number; ep?: 'cpu' | 'webgpu' | 'cuda' | 'auto'; threads?: number } = {},
): Promise<PerplexityResult & { ep: string; device: string }> {
  const open = await createSession(model, { ep: opts.ep ?? 'cpu', ...(opts.threads ? { intraOpThreads: opts.threads } : {}) });
  const t0 = performance.now();
  const count = inputs.length / context;
  const batch = opts.batch ?? 32;
  let nll = 0, n = 0;
  try {
    for (let w = 0; w < count; w += batch) {
      const b = Math.min(batch, count - w);
      const ids = BigInt64Array.from(inputs.subarray(w * context, (w + b) * context), (v) => BigInt(v));
      const out = await runSession(open.session, { [INPUT]: { dtype: 'int64', dims: [b, context], data: ids } });
      // float16 logits (an fp16 model without --keep-io-types) are widened, not read as their bits
      const logits = toFloatScores(out[OUTPUT]!).data;
      const V = logits.length / (b * context);
      for (let r = 0; r < b * context; r++) {
        const y = targets[w * context + r]!;
        if (y < 0) continue;
        nll += logSoftmaxAt(logits, r * V, V, y);
        n++;
      }
    }
  } finally {
    await open.session.release();
  }
  return { perplexity: Math.exp(nll / n), nll: nll / n, tokens: n, seconds: (performance.now() - t0) / 1000, ep: open.ep, device: open.device };
}
