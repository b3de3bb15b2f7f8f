/**
 * smallestMask (magnitude.ts) picks by selection what a stable sort would: the k smallest values,
 * ties in index order, NaN never small. Checked against that sort on ties, zeros, NaN, sorted and
 * reversed inputs (the quickselect's bad cases), both float widths, every k of small inputs.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { kthSmallest, smallestMask } from './magnitude.ts';

function bySort(values: Float32Array | Float64Array, k: number): Uint8Array {
  const mask = new Uint8Array(values.length);
  if (k <= 0) return mask;
  if (k >= values.length) return mask.fill(1);
  // NaN last; ties by index (Array.prototype.sort is stable)
  const order = Array.from(values.keys()).sort((a, b) => {
    const x = values[a]!, y = values[b]!;
    if (x !== x || y !== y) return (x !== x ? 1 : 0) - (y !== y ? 1 : 0);
    return x - y;
  });
  // a sort that puts NaN last and takes the k-th as the threshold masks nothing when it is NaN
  if (values[order[k - 1]!] !== values[order[k - 1]!]) return mask;
  for (let t = 0; t < k; t++) mask[order[t]!] = 1;
  return mask;
}

function seeded(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x / 2 ** 32; };
}

it('smallestMask equals a stable sort\'s first k on ties, zeros, NaN, sorted and reversed data, both float widths', () => {
  const r = seeded(42);
  const kinds: Record<string, (i: number, n: number) => number> = {
    smooth: () => r(),
    ties: () => [0, 0.5, 0.25, 1][Math.floor(r() * 4)]!,
    zeros: () => (r() < 0.7 ? 0 : r()),
    sorted: (i) => i,
    reversed: (i, n) => n - i,
    constant: () => 3,
    nan: () => (r() < 0.2 ? NaN : r()),
  };
  for (const [kind, make] of Object.entries(kinds)) {
    for (const n of [1, 2, 3, 7, 16, 33, 100, 1000, 5000]) {
      const f64 = Float64Array.from({ length: n }, (_, i) => make(i, n));
      for (const values of [f64, Float32Array.from(f64)]) {
        const ks = n <= 33 ? Array.from({ length: n + 2 }, (_, k) => k - 1) : [1, Math.floor(n / 3), Math.floor(n / 2), n - 1];
        for (const k of ks) {
          assert.deepEqual(smallestMask(values, k), bySort(values, k), `${kind} n=${n} k=${k} ${values.constructor.name}`);
        }
      }
    }
  }
});

it('kthSmallest: the k-th of the sorted non-NaN values and how many are below it, NaN past them', () => {
  const r = seeded(7);
  for (const [kind, make] of [['ties', () => (r() < 0.1 ? NaN : Math.floor(r() * 50))], ['sorted', (i: number) => i % 300], ['smooth', () => r()]] as const) {
    const values = Float64Array.from({ length: 10_000 }, (_, i) => make(i));
    const sorted = values.filter((v) => v === v).sort();
    for (const k of [0, 1, 17, 4999, sorted.length - 1]) {
      const got = kthSmallest(values, k);
      assert.equal(got.value, sorted[k], `${kind} k=${k}`);
      assert.equal(got.below, sorted.findIndex((v) => v === sorted[k]), `${kind} k=${k}: below`);
      // the sort that takes over after a few lopsided partitions gives the same
      for (const partitions of [0, 1, 3]) assert.deepEqual(kthSmallest(values, k, partitions), got, `${kind} k=${k}, sort after ${partitions} partitions`);
    }
    assert.ok(Number.isNaN(kthSmallest(values, sorted.length).value));
  }
});
