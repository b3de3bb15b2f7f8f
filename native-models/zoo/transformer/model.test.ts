import assert from 'node:assert/strict';
import test from 'node:test';
import { seededRandom } from '../../ir/random.ts';
import { mmNN, mmNT, mmTN } from './kernels.ts';
import { backward, forward, initParams, namedParams, parameterCount, Workspace, zerosLike, type TransformerSpec } from './model.ts';

const spec: TransformerSpec = { vocab: 7, context: 5, dModel: 8, heads: 2, layers: 2, ffn: 12 };

function batch(seed: number, n: number, vocab: number): Int32Array {
  const r = seededRandom(seed);
  return Int32Array.from({ length: n }, () => Math.floor(r() * vocab));
}

test('matrix kernels agree with the textbook triple loop', () => {
  const [m, k, n] = [5, 7, 3];
  const r = seededRandom(1);
  const a = Float32Array.from({ length: m * k }, () => r() - 0.5);
  const b = Float32Array.from({ length: k * n }, () => r() - 0.5);
  const ref = new Float32Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) { let s = 0; for (let p = 0; p < k; p++) s += a[i * k + p]! * b[p * n + j]!; ref[i * n + j] = s; }
  const c = new Float32Array(m * n);
  mmNN(a, b, c, m, k, n);
  c.forEach((v, i) => assert.ok(Math.abs(v - ref[i]!) < 1e-6));
  const bt = new Float32Array(n * k);
  for (let p = 0; p < k; p++) for (let j = 0; j < n; j++) bt[j * k + p] = b[p * n + j]!;
  mmNT(a, bt, c, m, k, n);
  c.forEach((v, i) => assert.ok(Math.abs(v - ref[i]!) < 1e-6));
  const at = new Float32Array(k * m);
  for (let i = 0; i < m; i++) for (let p = 0; p < k; p++) at[p * m + i] = a[i * k + p]!;
  mmTN(at, b, c, k, m, n); // (atᵀ = a) · b
  c.forEach((v, i) => assert.ok(Math.abs(v - ref[i]!) < 1e-6));
});

test('backward matches finite differences of the loss for every parameter tensor', () => {
  const p = initParams(spec, 5);
  // larger weights than the initialisation so every path carries signal
  const r = seededRandom(9);
  for (const [, a] of namedParams(p)) for (let i = 0; i < a.length; i++) a[i] = a[i]! + 0.3 * (r() - 0.5);
  const B = 2, T = spec.context;
  const tokens = batch(2, B * T, spec.vocab);
  const targets = batch(3, B * T, spec.vocab);
  targets[3] = -1; // a position without a target is skipped
  const ws = new Workspace(spec, B, T, true);
  forward(spec, p, ws, tokens, targets);
  const g = zerosLike(spec);
  backward(spec, p, ws, tokens, targets, g);
  const grads = namedParams(g);
  const eps = 1e-2;
  for (const [t, [name, a]] of namedParams(p).entries()) {
    const ga = grads[t]![1];
    // a few entries per tensor (the largest-gradient one among them)
    for (const i of [0, Math.floor(a.length / 2), a.length - 1]) {
      const keep = a[i]!;
      a[i] = keep + eps;
      const up = forward(spec, p, ws, tokens, targets).loss;
      a[i] = keep - eps;
      const down = forward(spec, p, ws, tokens, targets).loss;
      a[i] = keep;
      const numeric = (up - down) / (2 * eps);
      const analytic = ga[i]!;
      const tol = 2e-3 + 2e-2 * Math.abs(numeric);
      assert.ok(Math.abs(numeric - analytic) < tol, `${name}[${i}]: analytic ${analytic}, numeric ${numeric}`);
    }
  }
});

test('forward is deterministic and the parameter count matches the spec', () => {
  const p = initParams(spec, 1);
  const ws = new Workspace(spec, 1, spec.context, false);
  const tokens = batch(4, spec.context, spec.vocab);
  const a = forward(spec, p, ws, tokens, tokens).loss;
  const b = forward(spec, initParams(spec, 1), new Workspace(spec, 1, spec.context, false), tokens, tokens).loss;
  assert.equal(a, b);
  const { vocab: v, context: t, dModel: d, ffn: f, layers } = spec;
  assert.equal(parameterCount(spec), v * d + t * d + layers * (4 * d * d + 4 * d + 4 * d + d * f + f + f * d + d) + 2 * d + d * v + v);
});
