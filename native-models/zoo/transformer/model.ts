import { seededRandom } from '../../ir/random.ts';
import { addBias, biasGrad, mmNN, mmNT, mmTN } from './kernels.ts';

/**
 * A small decoder-only transformer language model (GPT-2 shaped: learned positions, pre-LayerNorm
 * blocks of causal multi-head attention and a ReLU MLP, a final LayerNorm and an untied output
 * projection), with its forward pass, backward pass and AdamW written out over Float32Arrays.
 *
 * Why not TF.js: on the development machine TF.js's cpu backend multiplied these matrices at about
 * 0.1 GFLOP/s and its wasm backend at 0.25, against 0.5–1 for the loops in kernels.ts; training
 * here takes minutes instead of an hour, and it is deterministic to the bit.
 *
 * Weights are stored as the ONNX export uses them: a linear layer is x·W + b with W [in, out], so
 * every MatMul weight is [K, N] as the weight-only quantizer and the pruning passes expect.
 */
export interface TransformerSpec {
  vocab: number;
  /** Context length (tokens per window). */
  context: number;
  dModel: number;
  heads: number;
  layers: number;
  /** Hidden width of the MLP. */
  ffn: number;
}

export const LN_EPS = 1e-5;

export interface LayerParams {
  ln1g: Float32Array; ln1b: Float32Array;
  wq: Float32Array; bq: Float32Array;
  wk: Float32Array; bk: Float32Array;
  wv: Float32Array; bv: Float32Array;
  wo: Float32Array; bo: Float32Array;
  ln2g: Float32Array; ln2b: Float32Array;
  w1: Float32Array; b1: Float32Array;
  w2: Float32Array; b2: Float32Array;
}

export interface Params {
  wte: Float32Array;
  wpe: Float32Array;
  layers: LayerParams[];
  lnfg: Float32Array; lnfb: Float32Array;
  wout: Float32Array; bout: Float32Array;
}

const LAYER_KEYS = ['ln1g', 'ln1b', 'wq', 'bq', 'wk', 'bk', 'wv', 'bv', 'wo', 'bo', 'ln2g', 'ln2b', 'w1', 'b1', 'w2', 'b2'] as const;

/** Every parameter tensor with a stable name, in a fixed order (optimizer state, export, checksums). */
export function namedParams(p: Params): [string, Float32Array][] {
  const out: [string, Float32Array][] = [['wte', p.wte], ['wpe', p.wpe]];
  p.layers.forEach((l, i) => { for (const k of LAYER_KEYS) out.push([`h${i}.${k}`, l[k]]); });
  out.push(['lnfg', p.lnfg], ['lnfb', p.lnfb], ['wout', p.wout], ['bout', p.bout]);
  return out;
}

export function zerosLike(spec: TransformerSpec): Params {
  const { vocab: v, context: t, dModel: d, ffn: f } = spec;
  const z = (n: number) => new Float32Array(n);
  return {
    wte: z(v * d), wpe: z(t * d),
    layers: Array.from({ length: spec.layers }, () => ({
      ln1g: z(d), ln1b: z(d), wq: z(d * d), bq: z(d), wk: z(d * d), bk: z(d), wv: z(d * d), bv: z(d),
      wo: z(d * d), bo: z(d), ln2g: z(d), ln2b: z(d), w1: z(d * f), b1: z(f), w2: z(f * d), b2: z(d),
    })),
    lnfg: z(d), lnfb: z(d), wout: z(d * v), bout: z(v),
  };
}

export function parameterCount(spec: TransformerSpec): number {
  return namedParams(zerosLike(spec)).reduce((n, [, a]) => n + a.length, 0);
}

/** GPT-2's initialisation: N(0, 0.02), residual projections scaled by 1/√(2·layers), LayerNorm 1/0. */
export function initParams(spec: TransformerSpec, seed: number): Params {
  const p = zerosLike(spec);
  const random = seededRandom(seed);
  const normal = (a: Float32Array, sigma: number) => {
    for (let i = 0; i < a.length; i++) a[i] = sigma * Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  };
  const resid = 0.02 / Math.sqrt(2 * spec.layers);
  normal(p.wte, 0.02);
  normal(p.wpe, 0.01);
  for (const l of p.layers) {
    l.ln1g.fill(1); l.ln2g.fill(1);
    normal(l.wq, 0.02); normal(l.wk, 0.02); normal(l.wv, 0.02); normal(l.wo, resid);
    normal(l.w1, 0.02); normal(l.w2, resid);
  }
  p.lnfg.fill(1);
  normal(p.wout, 0.02);
  return p;
}

/** Names of parameters AdamW decays (the matrices, not embeddings, biases or LayerNorm). */
export function decays(name: string): boolean {
  return /\.(wq|wk|wv|wo|w1|w2)$/.test(name) || name === 'wout';
}

interface LayerCache {
  x: Float32Array; // block input [BT, d]
  ln1: LnCache; q: Float32Array; k: Float32Array; v: Float32Array; // q,k,v per head [B,H,T,hd]
  att: Float32Array; // softmax probabilities [B,H,T,T]
  o: Float32Array; // merged heads [BT, d]
  h: Float32Array; // after attention residual [BT, d]
  ln2: LnCache; a1: Float32Array; // ReLU output [BT, f]
}

interface LnCache { y: Float32Array; xhat: Float32Array; rstd: Float32Array }

export interface ForwardResult {
  /** Mean negative log-likelihood (nats per token) over the positions with a target. */
  loss: number;
  /** Summed NLL and target count, for aggregating over batches. */
  nll: number;
  count: number;
}

function layerNorm(x: Float32Array, g: Float32Array, b: Float32Array, rows: number, d: number, cache: LnCache): void {
  for (let r = 0; r < rows; r++) {
    const o = r * d;
    let mean = 0;
    for (let j = 0; j < d; j++) mean += x[o + j]!;
    mean /= d;
    let v = 0;
    for (let j = 0; j < d; j++) { const t = x[o + j]! - mean; v += t * t; }
    const rstd = 1 / Math.sqrt(v / d + LN_EPS);
    cache.rstd[r] = rstd;
    for (let j = 0; j < d; j++) {
      const xh = (x[o + j]! - mean) * rstd;
      cache.xhat[o + j] = xh;
      cache.y[o + j] = xh * g[j]! + b[j]!;
    }
  }
}

/** dx = (dL/dy through LayerNorm); accumulates dg, db; dx is written (not added). */
function layerNormBackward(dy: Float32Array, g: Float32Array, cache: LnCache, rows: number, d: number, dx: Float32Array, dg: Float32Array, db: Float32Array): void {
  for (let r = 0; r < rows; r++) {
    const o = r * d;
    let m1 = 0, m2 = 0;
    for (let j = 0; j < d; j++) {
      const xh = cache.xhat[o + j]!;
      const dyj = dy[o + j]!;
      dg[j] = dg[j]! + dyj * xh;
      db[j] = db[j]! + dyj;
      const dxh = dyj * g[j]!;
      m1 += dxh;
      m2 += dxh * xh;
    }
    m1 /= d;
    m2 /= d;
    const rstd = cache.rstd[r]!;
    for (let j = 0; j < d; j++) dx[o + j] = rstd * (dy[o + j]! * g[j]! - m1 - cache.xhat[o + j]! * m2);
  }
}

/**
 * Buffers for one batch shape, reused across steps (training allocates nothing per step).
 */
export class Workspace {
  readonly rows: number;
  readonly caches: LayerCache[];
  readonly x0: Float32Array;
  readonly lnf: LnCache;
  readonly logits: Float32Array;
  // scratch
  readonly tmpD: Float32Array; readonly tmpD2: Float32Array; readonly tmpF: Float32Array;
  readonly qkvRows: Float32Array;
  readonly dq: Float32Array; readonly dk: Float32Array; readonly dv: Float32Array; readonly datt: Float32Array;

  constructor(readonly spec: TransformerSpec, readonly batch: number, readonly t: number, training: boolean) {
    const { dModel: d, ffn: f, heads: H, vocab: V } = spec;
    const rows = (this.rows = batch * t);
    const z = (n: number) => new Float32Array(n);
    const ln = (): LnCache => ({ y: z(rows * d), xhat: z(rows * d), rstd: z(rows) });
    this.caches = Array.from({ length: spec.layers }, () => ({
      x: z(rows * d), ln1: ln(), q: z(rows * d), k: z(rows * d), v: z(rows * d), att: z(batch * H * t * t),
      o: z(rows * d), h: z(rows * d), ln2: ln(), a1: z(rows * f),
    }));
    this.x0 = z(rows * d);
    this.lnf = ln();
    this.logits = z(rows * V);
    this.tmpD = z(rows * d); this.tmpD2 = z(rows * d); this.tmpF = z(rows * f);
    this.qkvRows = z(rows * d);
    const g = training ? rows * d : 0;
    this.dq = z(g); this.dk = z(g); this.dv = z(g); this.datt = z(training ? t * t : 0);
  }
}

/** [BT, d] rows → [B, H, T, hd] heads. */
function splitHeads(src: Float32Array, dst: Float32Array, B: number, T: number, H: number, hd: number): void {
  const d = H * hd;
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) {
    const s = (b * T + t) * d;
    for (let h = 0; h < H; h++) {
      const o = ((b * H + h) * T + t) * hd;
      for (let j = 0; j < hd; j++) dst[o + j] = src[s + h * hd + j]!;
    }
  }
}

/** [B, H, T, hd] heads → [BT, d] rows (written, or added when `add`). */
function mergeHeads(src: Float32Array, dst: Float32Array, B: number, T: number, H: number, hd: number, add = false): void {
  const d = H * hd;
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) {
    const o = (b * T + t) * d;
    for (let h = 0; h < H; h++) {
      const s = ((b * H + h) * T + t) * hd;
      for (let j = 0; j < hd; j++) dst[o + h * hd + j] = add ? dst[o + h * hd + j]! + src[s + j]! : src[s + j]!;
    }
  }
}

/**
 * Forward pass over `batch` windows of `t` tokens (`tokens` [batch·t]); when `targets` is given
 * (same layout, −1 = no target), the mean cross-entropy. Logits stay in ws.logits.
 */
export function forward(spec: TransformerSpec, p: Params, ws: Workspace, tokens: Int32Array, targets: Int32Array | null): ForwardResult {
  const { dModel: d, heads: H, ffn: f, vocab: V } = spec;
  const B = ws.batch, T = ws.t, rows = ws.rows, hd = d / H;
  const scale = 1 / Math.sqrt(hd);
  // embeddings
  const x0 = ws.x0;
  for (let r = 0; r < rows; r++) {
    const tok = tokens[r]!, pos = r % T;
    for (let j = 0; j < d; j++) x0[r * d + j] = p.wte[tok * d + j]! + p.wpe[pos * d + j]!;
  }
  let x = x0;
  for (let li = 0; li < spec.layers; li++) {
    const L = p.layers[li]!, c = ws.caches[li]!;
    c.x.set(x);
    layerNorm(c.x, L.ln1g, L.ln1b, rows, d, c.ln1);
    // projections, then split into heads
    const tmp = ws.qkvRows;
    for (const [w, b, dst] of [[L.wq, L.bq, c.q], [L.wk, L.bk, c.k], [L.wv, L.bv, c.v]] as const) {
      mmNN(c.ln1.y, w, tmp, rows, d, d);
      addBias(tmp, b, rows, d);
      splitHeads(tmp, dst, B, T, H, hd);
    }
    // causal attention per (batch, head)
    const oh = ws.tmpD; // heads output [B,H,T,hd]
    for (let bh = 0; bh < B * H; bh++) {
      const qo = bh * T * hd, ao = bh * T * T;
      for (let i = 0; i < T; i++) {
        const qi = qo + i * hd, ai = ao + i * T;
        let max = -Infinity;
        for (let j = 0; j <= i; j++) {
          const kj = qo + j * hd;
          let s = 0;
          for (let e = 0; e < hd; e++) s += c.q[qi + e]! * c.k[kj + e]!;
          s *= scale;
          c.att[ai + j] = s;
          if (s > max) max = s;
        }
        let sum = 0;
        for (let j = 0; j <= i; j++) { const e = Math.exp(c.att[ai + j]! - max); c.att[ai + j] = e; sum += e; }
        const inv = 1 / sum;
        for (let j = 0; j <= i; j++) c.att[ai + j] = c.att[ai + j]! * inv;
        for (let j = i + 1; j < T; j++) c.att[ai + j] = 0;
        const oi = qo + i * hd;
        for (let e = 0; e < hd; e++) oh[oi + e] = 0;
        for (let j = 0; j <= i; j++) {
          const pj = c.att[ai + j]!, vj = qo + j * hd;
          for (let e = 0; e < hd; e++) oh[oi + e] = oh[oi + e]! + pj * c.v[vj + e]!;
        }
      }
    }
    mergeHeads(oh, c.o, B, T, H, hd);
    mmNN(c.o, L.wo, c.h, rows, d, d);
    addBias(c.h, L.bo, rows, d);
    for (let i = 0; i < rows * d; i++) c.h[i] = c.h[i]! + c.x[i]!;
    // MLP
    layerNorm(c.h, L.ln2g, L.ln2b, rows, d, c.ln2);
    mmNN(c.ln2.y, L.w1, c.a1, rows, d, f);
    addBias(c.a1, L.b1, rows, f);
    for (let i = 0; i < rows * f; i++) if (c.a1[i]! < 0) c.a1[i] = 0;
    const out = li + 1 < spec.layers ? ws.caches[li + 1]!.x : ws.tmpD2;
    mmNN(c.a1, L.w2, out, rows, f, d);
    addBias(out, L.b2, rows, d);
    for (let i = 0; i < rows * d; i++) out[i] = out[i]! + c.h[i]!;
    x = out;
  }
  layerNorm(x, p.lnfg, p.lnfb, rows, d, ws.lnf);
  mmNN(ws.lnf.y, p.wout, ws.logits, rows, d, V);
  addBias(ws.logits, p.bout, rows, V);
  if (!targets) return { loss: NaN, nll: 0, count: 0 };
  let nll = 0, count = 0;
  for (let r = 0; r < rows; r++) {
    const y = targets[r]!;
    if (y < 0) continue;
    nll += logSoftmaxAt(ws.logits, r * V, V, y);
    count++;
  }
  return { loss: count ? nll / count : 0, nll, count };
}

/** −log softmax(logits[off..off+n))[y], computed in float64. */
export function logSoftmaxAt(logits: ArrayLike<number>, off: number, n: number, y: number): number {
  let max = -Infinity;
  for (let j = 0; j < n; j++) if (logits[off + j]! > max) max = logits[off + j]!;
  let sum = 0;
  for (let j = 0; j < n; j++) sum += Math.exp(logits[off + j]! - max);
  return Math.log(sum) + max - logits[off + y]!;
}

/**
 * Gradients of the mean cross-entropy of the last forward(…, targets) into `g` (overwritten).
 */
export function backward(spec: TransformerSpec, p: Params, ws: Workspace, tokens: Int32Array, targets: Int32Array, g: Params): void {
  const { dModel: d, heads: H, ffn: f, vocab: V } = spec;
  const B = ws.batch, T = ws.t, rows = ws.rows, hd = d / H;
  const scale = 1 / Math.sqrt(hd);
  for (const [, a] of namedParams(g)) a.fill(0);
  let count = 0;
  for (let r = 0; r < rows; r++) if (targets[r]! >= 0) count++;
  // dlogits = (softmax − onehot) / count, in place over ws.logits
  const dl = ws.logits;
  for (let r = 0; r < rows; r++) {
    const o = r * V, y = targets[r]!;
    if (y < 0) { dl.fill(0, o, o + V); continue; }
    let max = -Infinity;
    for (let j = 0; j < V; j++) if (dl[o + j]! > max) max = dl[o + j]!;
    let sum = 0;
    for (let j = 0; j < V; j++) { const e = Math.exp(dl[o + j]! - max); dl[o + j] = e; sum += e; }
    for (let j = 0; j < V; j++) dl[o + j] = dl[o + j]! / sum / count;
    dl[o + y] = dl[o + y]! - 1 / count;
  }
  mmTN(ws.lnf.y, dl, g.wout, rows, d, V);
  biasGrad(dl, g.bout, rows, V);
  const dy = ws.tmpD; // d loss / d lnf.y
  mmNT(dl, p.wout, dy, rows, V, d);
  const dx = ws.tmpD2; // running d loss / d x (residual stream)
  layerNormBackward(dy, p.lnfg, ws.lnf, rows, d, dx, g.lnfg, g.lnfb);
  const dh = new Float32Array(rows * d);
  const dtmp = ws.qkvRows;
  for (let li = spec.layers - 1; li >= 0; li--) {
    const L = p.layers[li]!, G = g.layers[li]!, c = ws.caches[li]!;
    // MLP: out = h + relu(ln2·w1 + b1)·w2 + b2
    mmTN(c.a1, dx, G.w2, rows, f, d);
    biasGrad(dx, G.b2, rows, d);
    const da1 = ws.tmpF;
    mmNT(dx, L.w2, da1, rows, d, f);
    for (let i = 0; i < rows * f; i++) if (c.a1[i] === 0) da1[i] = 0;
    mmTN(c.ln2.y, da1, G.w1, rows, d, f);
    biasGrad(da1, G.b1, rows, f);
    mmNT(da1, L.w1, dtmp, rows, f, d);
    layerNormBackward(dtmp, L.ln2g, c.ln2, rows, d, dh, G.ln2g, G.ln2b);
    for (let i = 0; i < rows * d; i++) dh[i] = dh[i]! + dx[i]!;
    // attention: h = x + o·wo + bo
    mmTN(c.o, dh, G.wo, rows, d, d);
    biasGrad(dh, G.bo, rows, d);
    mmNT(dh, L.wo, dtmp, rows, d, d); // d o (merged)
    const doh = ws.dv; // reuse as [B,H,T,hd] d o per head... split first
    splitHeads(dtmp, doh, B, T, H, hd);
    const dq = ws.dq, dk = ws.dk, dvh = new Float32Array(rows * d);
    dq.fill(0); dk.fill(0);
    const datt = ws.datt;
    for (let bh = 0; bh < B * H; bh++) {
      const qo = bh * T * hd, ao = bh * T * T;
      for (let i = 0; i < T; i++) {
        const oi = qo + i * hd, ai = ao + i * T;
        // dP_ij = dO_i · V_j ; dV_j += P_ij dO_i
        let dot = 0;
        for (let j = 0; j <= i; j++) {
          const vj = qo + j * hd, pij = c.att[ai + j]!;
          let s = 0;
          for (let e = 0; e < hd; e++) { s += doh[oi + e]! * c.v[vj + e]!; dvh[vj + e] = dvh[vj + e]! + pij * doh[oi + e]!; }
          datt[j] = s;
          dot += s * pij;
        }
        // dS_ij = P_ij (dP_ij − Σ_j P dP), then through the scale
        for (let j = 0; j <= i; j++) {
          const ds = c.att[ai + j]! * (datt[j]! - dot) * scale;
          if (ds === 0) continue;
          const kj = qo + j * hd;
          for (let e = 0; e < hd; e++) {
            dq[oi + e] = dq[oi + e]! + ds * c.k[kj + e]!;
            dk[kj + e] = dk[kj + e]! + ds * c.q[oi + e]!;
          }
        }
      }
    }
    // back through the projections into d ln1.y (accumulated in dtmp2)
    const dln1 = ws.tmpD;
    dln1.fill(0);
    for (const [hg, w, gw, gb] of [[dq, L.wq, G.wq, G.bq], [dk, L.wk, G.wk, G.bk], [dvh, L.wv, G.wv, G.bv]] as const) {
      mergeHeads(hg, dtmp, B, T, H, hd);
      mmTN(c.ln1.y, dtmp, gw, rows, d, d);
      biasGrad(dtmp, gb, rows, d);
      mmNT(dtmp, w, dln1, rows, d, d, true);
    }
    layerNormBackward(dln1, L.ln1g, c.ln1, rows, d, dx, G.ln1g, G.ln1b);
    for (let i = 0; i < rows * d; i++) dx[i] = dx[i]! + dh[i]!;
  }
  // embeddings
  for (let r = 0; r < rows; r++) {
    const tok = tokens[r]!, pos = r % T;
    for (let j = 0; j < d; j++) {
      g.wte[tok * d + j] = g.wte[tok * d + j]! + dx[r * d + j]!;
      g.wpe[pos * d + j] = g.wpe[pos * d + j]! + dx[r * d + j]!;
    }
  }
}

export interface AdamState { m: Float32Array[]; v: Float32Array[]; step: number }

export function adamState(p: Params): AdamState {
  const list = namedParams(p);
  return { m: list.map(([, a]) => new Float32Array(a.length)), v: list.map(([, a]) => new Float32Array(a.length)), step: 0 };
}

/** One AdamW step with global gradient-norm clipping; returns the gradient norm before clipping. */
export function adamStep(p: Params, g: Params, s: AdamState, lr: number, opts: { beta1?: number; beta2?: number; eps?: number; weightDecay?: number; clip?: number } = {}): number {
  const b1 = opts.beta1 ?? 0.9, b2 = opts.beta2 ?? 0.99, eps = opts.eps ?? 1e-8, wd = opts.weightDecay ?? 0.01, clip = opts.clip ?? 1;
  const ps = namedParams(p), gs = namedParams(g);
  let sq = 0;
  for (const [, a] of gs) for (let i = 0; i < a.length; i++) sq += a[i]! * a[i]!;
  const norm = Math.sqrt(sq);
  const k = norm > clip ? clip / norm : 1;
  s.step++;
  const c1 = 1 - b1 ** s.step, c2 = 1 - b2 ** s.step;
  for (let t = 0; t < ps.length; t++) {
    const [name, w] = ps[t]!;
    const gr = gs[t]![1], m = s.m[t]!, v = s.v[t]!;
    const decay = decays(name) ? wd : 0;
    for (let i = 0; i < w.length; i++) {
      const gi = gr[i]! * k;
      m[i] = b1 * m[i]! + (1 - b1) * gi;
      v[i] = b2 * v[i]! + (1 - b2) * gi * gi;
      w[i] = w[i]! - lr * ((m[i]! / c1) / (Math.sqrt(v[i]! / c2) + eps) + decay * w[i]!);
    }
  }
  return norm;
}
