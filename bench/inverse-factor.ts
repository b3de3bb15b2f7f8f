/**
 * The inverse-Hessian factor GPTQ and SparseGPT need per layer (U upper with H⁻¹ = UᵀU) on the CPU:
 * forming H⁻¹ and factoring it again (what SparseGPT did: linalg.ts, 4k³/3 flops), GPTQ's one
 * Cholesky and one triangular inverse on one thread (kernels-cpu.mjs, 2k³/3), and the same on every
 * core (threads.ts) — ratios against the first, all in this run, and whether the threaded factor
 * equals the single-threaded one bit for bit. k = 4,608 is a 3×3 conv of 512 channels.
 *
 *   node --import tsx bench/inverse-factor.ts [--k 2304] [--threads N] [--skip-before]
 */
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { choleskyUpper, inverseSpd } from '../core/passes/prune/linalg.ts';
import { inverseCholeskyUpper } from '../native-models/gpu/kernels-cpu.mjs';
import { inverseCholeskyUpperParallel } from '../native-models/gpu/threads.ts';
import { seededGaussian } from '../native-models/ir/random.ts';

const { values } = parseArgs({ options: { k: { type: 'string', default: '2304' }, threads: { type: 'string' }, 'skip-before': { type: 'boolean', default: false } } });
const n = Number(values.k);
const threads = Number(values.threads ?? availableParallelism());
// H = XᵀX + 0.01·I over n + 64 Gaussian rows: positive definite, as a layer's Hessian is
const rows = n + 64;
const x = seededGaussian(rows * n, 1);
const h = new Float64Array(n * n);
for (let r = 0; r < rows; r++) {
  for (let i = 0; i < n; i++) {
    const xi = x[r * n + i]!;
    for (let j = 0; j <= i; j++) h[i * n + j] = h[i * n + j]! + xi * x[r * n + j]!;
  }
}
for (let i = 0; i < n; i++) { for (let j = 0; j < i; j++) h[j * n + i] = h[i * n + j]!; h[i * n + i] = h[i * n + i]! + 0.01; }

async function timed<T>(f: () => T | Promise<T>): Promise<{ result: T; seconds: number }> {
  const t = performance.now();
  const result = await f();
  return { result, seconds: (performance.now() - t) / 1000 };
}

const before = values['skip-before'] ? null : await timed(() => choleskyUpper(inverseSpd(h, n)!, n));
const one = await timed(() => inverseCholeskyUpper(h, n));
const all = await timed(() => inverseCholeskyUpperParallel(h, n, threads));
const base = before?.seconds ?? one.seconds;
const row = (label: string, s: number) => console.log(`${label.padEnd(52)} ${s.toFixed(2).padStart(7)} s  ${(base / s).toFixed(2).padStart(6)}×`);
console.log(`k = ${n}: U with H⁻¹ = UᵀU, float64 (× = speed-up over the first row)`);
if (before) row('H⁻¹ formed, then factored (SparseGPT before)', before.seconds);
row('one Cholesky + one triangular inverse, 1 thread', one.seconds);
row(`the same on ${threads} threads`, all.seconds);
const a = one.result!, b = all.result!;
let same = a.length === b.length;
for (let i = 0; same && i < a.length; i++) same = a[i] === b[i];
console.log(`threaded factor ${same ? 'equals' : 'DIFFERS FROM'} the single-threaded one bit for bit`);
console.log(JSON.stringify({ bench: 'inverse-factor', k: n, threads, beforeSeconds: before?.seconds ?? null, oneThreadSeconds: one.seconds, threadedSeconds: all.seconds, bitwiseEqual: same }));
if (!same) process.exitCode = 1;
