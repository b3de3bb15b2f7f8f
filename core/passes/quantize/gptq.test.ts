import assert from 'node:assert/strict';
import test from 'node:test';
import { inverseCholeskyUpper } from '../../../native-models/gpu/kernels-cpu.mjs';
import { CpuThreads } from '../../../native-models/gpu/threads.ts';
import { choleskyUpper, inverseSpd, quadraticFormSum } from '../prune/linalg.ts';
import { dequantize, gptqQuantize, packMatMulNBits, type GptqOptions } from './gptq.ts';
import { gaussian } from './test-models.ts';
import { quantizeBlocks, quantizeBlockwise } from './weight-only.ts';

/** X [n × k] with correlated features (a few shared factors plus noise): where GPTQ has something to exploit. */
function correlatedInputs(n: number, k: number, seed: number): Float64Array {
  const factors = 6;
  const z = gaussian(n * factors, seed);
  const mix = gaussian(factors * k, seed + 1);
  const noise = gaussian(n * k, seed + 2);
  const x = new Float64Array(n * k);
  for (let r = 0; r < n; r++) for (let j = 0; j < k; j++) {
    let s = 0.3 * noise[r * k + j]!;
    for (let f = 0; f < factors; f++) s += z[r * factors + f]! * mix[f * k + j]!;
    x[r * k + j] = s * (1 + (j % 7)); // uneven feature scales too
  }
  return x;
}

function hessian(x: Float64Array, n: number, k: number): { h: Float64Array; xtx: Float64Array } {
  const xtx = new Float64Array(k * k);
  for (let r = 0; r < n; r++) for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) xtx[i * k + j] = xtx[i * k + j]! + x[r * k + i]! * x[r * k + j]!;
  return { h: Float64Array.from(xtx, (v) => (2 * v) / n), xtx };
}

/** W [rows × K] as float32 values (what a stored weight holds) and the same as [K, N] for the RTN quantizer. */
function weights(rows: number, k: number, seed: number): { w: Float64Array; kn: Float32Array } {
  const g = gaussian(rows * k, seed, 0.1);
  const w = Float64Array.from(g);
  const kn = new Float32Array(rows * k);
  for (let r = 0; r < rows; r++) for (let j = 0; j < k; j++) kn[j * rows + r] = g[r * k + j]!;
  return { w, kn };
}

function identity(k: number): Float64Array {
  const h = new Float64Array(k * k);
  for (let i = 0; i < k; i++) h[i * k + i] = 1;
  return h;
}

test('U with H⁻¹ = UᵀU matches the straightforward Cholesky of the inverse', () => {
  const k = 37;
  const x = correlatedInputs(200, k, 3);
  const { h } = hessian(x, 200, k);
  for (let i = 0; i < k; i++) h[i * k + i] = h[i * k + i]! + 0.01;
  const u = inverseCholeskyUpper(h, k)!;
  const ref = choleskyUpper(inverseSpd(h, k)!, k)!;
  let max = 0, scale = 0;
  for (let i = 0; i < k * k; i++) { max = Math.max(max, Math.abs(u[i]! - ref[i]!)); scale = Math.max(scale, Math.abs(ref[i]!)); }
  assert.ok(max / scale < 1e-9, `relative difference ${max / scale}`);
  for (let i = 0; i < k; i++) for (let j = 0; j < i; j++) assert.equal(u[i * k + j], 0, 'upper triangular');
  // and UᵀU·H = I
  let worst = 0;
  for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) {
    let s = 0;
    for (let a = 0; a < k; a++) { let inv = 0; for (let b = 0; b <= Math.min(i, a); b++) inv += u[b * k + i]! * u[b * k + a]!; s += inv * h[a * k + j]!; }
    worst = Math.max(worst, Math.abs(s - (i === j ? 1 : 0)));
  }
  assert.ok(worst < 1e-8, `UᵀU·H − I: ${worst}`);
  assert.equal(inverseCholeskyUpper(Float64Array.of(1, 2, 2, 1), 2), null, 'indefinite: null');
});

test('with H = I, GPTQ is round-to-nearest bit for bit (4 and 8 bits, symmetric or not, short last group, act-order)', async () => {
  const [rows, k] = [24, 80]; // K not a multiple of the group size
  const { w, kn } = weights(rows, k, 11);
  for (const bits of [4, 8] as const) {
    for (const symmetric of [false, true]) {
      for (const extra of [{}, { actOrder: true }, { staticGroups: true }, { blockSize: 32 }]) {
        const o: GptqOptions = { bits, groupSize: 32, symmetric, ...extra };
        const r = await gptqQuantize(w, rows, k, identity(k), o);
        const rtn = quantizeBlockwise(kn, k, rows, bits, 32, symmetric);
        const label = JSON.stringify({ bits, symmetric, ...extra });
        assert.deepEqual([...r.scales], [...rtn.scales], `${label}: scales`);
        assert.deepEqual([...r.zeroPoints], [...rtn.zeroPoints], `${label}: zero points`);
        for (let n = 0; n < rows; n++) for (let j = 0; j < k; j++) assert.equal(r.q[n * k + j], rtn.q[j * rows + n], `${label}: q[${n}, ${j}]`);
        // and MatMulNBits' B packed exactly as the RTN pass packs it
        const packed = quantizeBlocks(() => [{ values: kn, offset: 0 }], k, rows, bits, 32, symmetric, 'packed');
        assert.deepEqual(packMatMulNBits(r, bits, 32), packed.data, `${label}: packed B`);
      }
    }
  }
});

test('GPTQ lowers ‖WX − ŴX‖ below RTN on a layer with correlated inputs (and act-order lowers it further here)', async () => {
  const [n, rows, k] = [512, 48, 128];
  const x = correlatedInputs(n, k, 21);
  const { h, xtx } = hessian(x, n, k);
  const { w } = weights(rows, k, 22);
  const err = (wq: Float64Array) => {
    const d = Float64Array.from(w, (v, i) => v - wq[i]!);
    return quadraticFormSum(d, rows, xtx, k) / quadraticFormSum(w, rows, xtx, k);
  };
  const identityResult = await gptqQuantize(w, rows, k, identity(k), { bits: 4, groupSize: 32, symmetric: false });
  const rtn = err(dequantize(identityResult, 32));
  // measured: RTN 2.2e-3, GPTQ 1.3e-4, GPTQ act-order 3.2e-5
  const plain = err(dequantize(await gptqQuantize(w, rows, k, h, { bits: 4, groupSize: 32, symmetric: false }), 32));
  const ordered = err(dequantize(await gptqQuantize(w, rows, k, h, { bits: 4, groupSize: 32, symmetric: false, actOrder: true }), 32));
  assert.ok(plain < 0.2 * rtn, `GPTQ ${plain} vs RTN ${rtn}`);
  assert.ok(ordered < plain, `act-order ${ordered} vs GPTQ ${plain}`);
  // 8 bits: both tiny, GPTQ still lower
  const r8 = await gptqQuantize(w, rows, k, h, { bits: 8, groupSize: 128, symmetric: true });
  const rtn8 = err(dequantize(await gptqQuantize(w, rows, k, identity(k), { bits: 8, groupSize: 128, symmetric: true }), 128));
  assert.ok(err(dequantize(r8, 128)) < rtn8);
});

test('dead inputs are zeroed (or only rounded, on request), and worker threads give the same bytes as one thread', async () => {
  const [n, rows, k] = [300, 512, 256]; // rows·K² = 2^25: large enough for the threads to split it
  const x = correlatedInputs(n, k, 31);
  for (let r = 0; r < n; r++) x[r * k + 5] = 0;
  const { h } = hessian(x, n, k);
  const { w } = weights(rows, k, 32);
  const one = await gptqQuantize(w, rows, k, h, { bits: 4, groupSize: 64, symmetric: false, actOrder: true });
  assert.equal(one.deadInputs, 1);
  const deq = dequantize(one, 64);
  for (let r = 0; r < rows; r++) assert.ok(Math.abs(deq[r * k + 5]!) <= one.scales[r * one.groups]! * 0.5 + 1e-12, 'a dead input dequantizes to (about) zero');
  // zeroDeadInputs: false (static QDQ): the dead input's weights are only rounded, within half a step
  const kept = await gptqQuantize(w, rows, k, h, { bits: 8, groupSize: k, symmetric: true, staticGroups: true, zeroDeadInputs: false });
  assert.equal(kept.deadInputs, 1);
  const keptDeq = dequantize(kept, k);
  let nonzero = 0;
  for (let r = 0; r < rows; r++) {
    assert.ok(Math.abs(keptDeq[r * k + 5]! - w[r * k + 5]!) <= kept.scales[r]! * 0.5 + 1e-9, `row ${r}: ${keptDeq[r * k + 5]} vs ${w[r * k + 5]}`);
    if (keptDeq[r * k + 5] !== 0) nonzero++;
  }
  assert.ok(nonzero > rows / 2, `kept ${nonzero} of ${rows} weights of the dead input`);
  const threads = new CpuThreads(2);
  try {
    for (const actOrder of [false, true]) {
      const a = await gptqQuantize(w, rows, k, h, { bits: 4, groupSize: 64, symmetric: false, actOrder });
      const b = await gptqQuantize(w, rows, k, h, { bits: 4, groupSize: 64, symmetric: false, actOrder, threads });
      assert.deepEqual(b.q, a.q);
      assert.deepEqual(b.scales, a.scales);
      assert.deepEqual(b.zeroPoints, a.zeroPoints);
    }
  } finally {
    await threads.close();
  }
});
