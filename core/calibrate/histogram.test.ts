import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { seededGaussian, seededRandom } from '../../native-models/ir/random.ts';
import { latticeFor, StreamingHistogram } from './histogram.ts';

const gaussian = seededGaussian;

/** The values cut into batches of random sizes, in a shuffled order. */
function shuffledBatches(values: Float32Array, seed: number): Float32Array[] {
  const random = seededRandom(seed);
  const batches: Float32Array[] = [];
  for (let i = 0; i < values.length;) {
    const n = 1 + Math.floor(random() * 5000);
    batches.push(values.slice(i, i + n));
    i += n;
  }
  for (let i = batches.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [batches[i], batches[j]] = [batches[j]!, batches[i]!];
  }
  return batches;
}

function assertSameHistogram(a: StreamingHistogram, b: StreamingHistogram): void {
  assert.equal(a.start, b.start);
  assert.equal(a.width, b.width);
  assert.deepEqual([a.min, a.max, a.total, a.zeros, a.nonFinite], [b.min, b.max, b.total, b.zeros, b.nonFinite]);
  assert.deepEqual(a.counts, b.counts);
}

/** A skewed sample whose range grows batch after batch: normals, a few far values, exact zeros. */
function skewed(): Float32Array {
  const v = gaussian(200_000, 3).map((x, i) => (i % 7 === 0 ? 0 : i % 5000 === 1 ? x * 40 + 30 : x * 2 + 1));
  v[12345] = NaN;
  v[54321] = -Infinity;
  return v;
}

describe('streaming histogram', () => {
  for (const absolute of [false, true]) {
    it(`streamed over shuffled batches equals one pass over everything (${absolute ? '|x|' : 'x'})`, () => {
      const values = skewed();
      const once = new StreamingHistogram({ absolute });
      once.update(values);
      const streamed = new StreamingHistogram({ absolute });
      for (const b of shuffledBatches(values, 11)) streamed.update(b);
      // Old bins nest whole in the widened ones, so re-binning moves counts without splitting them:
      // the streamed counts are exactly the one-pass counts, not merely close.
      assertSameHistogram(streamed, once);
      assert.equal(once.nonFinite, 2);
      assert.equal(once.total, values.length - 2);
      assert.equal(once.counts.reduce((s, c) => s + c, 0), once.total);
    });

    it(`merging collectors fed disjoint shards equals one pass (${absolute ? '|x|' : 'x'})`, () => {
      const values = skewed();
      const once = new StreamingHistogram({ absolute });
      once.update(values);
      const shards = [new StreamingHistogram({ absolute }), new StreamingHistogram({ absolute }), new StreamingHistogram({ absolute })];
      shuffledBatches(values, 5).forEach((b, i) => shards[i % 3]!.update(b));
      shards[0]!.merge(shards[1]!);
      shards[2]!.merge(shards[0]!);
      assertSameHistogram(shards[2]!, once);
    });
  }

  it('costs resolution, not placement: [min, max] spans more than (bins − 1)/2 bins', () => {
    for (const [lo, hi] of [[-4.9, 4.7], [0, 863.13], [1000, 1000.001], [-1e-6, 3e-7], [-3e30, 1e30]] as const) {
      for (const bins of [128, 2048]) {
        const { start, width } = latticeFor(lo, hi, bins);
        assert.ok(start <= lo && hi < start + bins * width, `covers [${lo}, ${hi}]`);
        assert.ok((hi - lo) / width > (bins - 1) / 2, `${bins} bins over [${lo}, ${hi}]: width ${width}`);
        assert.ok(Number.isInteger(Math.log2(width)), 'a power of two');
      }
    }
  });

  it('grows from a constant batch, and from all-zero ones, without losing counts', () => {
    const h = new StreamingHistogram({ bins: 64 });
    h.update(new Float32Array(100)); // zeros: the narrowest lattice
    h.update(Float32Array.of(3, 3, 3));
    h.update(Float32Array.of(-1000, 2.5, 1e6));
    const once = new StreamingHistogram({ bins: 64 });
    once.update(Float32Array.from([...new Float32Array(100), 3, 3, 3, -1000, 2.5, 1e6]));
    assertSameHistogram(h, once);
    assert.equal(h.zeros, 100);
    assert.equal(h.counts[Math.floor((0 - h.start) / h.width)], 100 + 3 + 1); // 0, 3, 2.5 share a bin this wide
  });

  it('keeps a fixed number of bins whatever it is fed', () => {
    const h = new StreamingHistogram({ bins: 256 });
    for (let i = 0; i < 50; i++) h.update(gaussian(10_000, i).map((x) => x * (i + 1)));
    assert.equal(h.counts.length, 256);
    assert.equal(h.total, 500_000);
  });

  it('refuses to merge histograms of different shapes', () => {
    assert.throws(() => new StreamingHistogram({ bins: 64 }).merge(new StreamingHistogram({ bins: 128 })), /same bins/);
    assert.throws(() => new StreamingHistogram({ bins: 7 }), /bins must be/);
  });
});
