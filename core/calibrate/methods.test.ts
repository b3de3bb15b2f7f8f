import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { seededGaussian, seededRandom } from '../../native-models/ir/random.ts';
import { quantParams, quantRange, quantizeValue, type QuantType } from '../passes/quantize/math.ts';
import { MinMaxCollector, type RangeCollector, type TensorRange } from './collectors.ts';
import { EntropyCollector, entropyThreshold } from './entropy.ts';
import { StreamingHistogram } from './histogram.ts';
import { expectedSquaredError, MseCollector } from './mse.ts';
import { PercentileCollector } from './percentile.ts';

const gaussian = seededGaussian;

const NORMAL = gaussian(1_000_000, 1);
/** The normal sample plus six values 60–120σ out: what one odd activation does to a range. */
const HEAVY = Float32Array.from([...NORMAL, 60, 80, 100, -70, 90, 120]);

/** Measured, not estimated: every value through math.ts's quantizer and back. */
function quantizationMse(values: Float32Array, r: TensorRange, type: QuantType = 'uint8', symmetric = false): number {
  const { scale, zeroPoint } = quantParams(r.min, r.max, type, symmetric);
  const [qmin, qmax] = quantRange(type, symmetric);
  let sum = 0;
  for (const v of values) {
    const d = (quantizeValue(v, scale, zeroPoint, qmin, qmax) - zeroPoint) * scale - v;
    sum += d * d;
  }
  return sum / values.length;
}

function fed<C extends RangeCollector>(c: C, values: Float32Array): C {
  for (let i = 0; i < values.length; i += 65_536) c.update(values.subarray(i, i + 65_536));
  return c;
}

function histogramOf(values: Float32Array, absolute = false): StreamingHistogram {
  const h = new StreamingHistogram({ absolute });
  h.update(values);
  return h;
}

describe('percentile calibration', () => {
  const sorted = NORMAL.slice().sort();
  const empirical = (q: number) => sorted[Math.ceil(q * sorted.length) - 1]!;

  it('asymmetric: each tail loses (100 − p)/2 %, at the normal quantile ±2.5758 within a bin', () => {
    const c = fed(new PercentileCollector({ percentile: 99 }), NORMAL);
    const r = c.range();
    const bin = c.histogram.width;
    // The histogram answers within one bin of the sample's own quantile; the sample's quantile
    // sits within a few standard errors (0.0049 here) of the analytic one.
    assert.ok(Math.abs(r.min - empirical(0.005)) <= bin, `${r.min} vs ${empirical(0.005)}`);
    assert.ok(Math.abs(r.max - empirical(0.995)) <= bin, `${r.max} vs ${empirical(0.995)}`);
    assert.ok(Math.abs(r.min + 2.5758293) <= bin + 4 * 0.0049, String(r.min));
    assert.ok(Math.abs(r.max - 2.5758293) <= bin + 4 * 0.0049, String(r.max));
  });

  it('symmetric: ±t keeps p % of |x|, at 3.2905 for p = 99.9', () => {
    const c = fed(new PercentileCollector({ percentile: 99.9, symmetric: true }), NORMAL);
    const r = c.range();
    const abs = NORMAL.map(Math.abs).sort();
    const exact = abs[Math.ceil(0.999 * abs.length) - 1]!;
    assert.equal(r.min, -r.max);
    assert.ok(Math.abs(r.max - exact) <= c.histogram.width, `${r.max} vs ${exact}`);
    assert.ok(Math.abs(r.max - 3.2905267) <= c.histogram.width + 4 * 0.0089, String(r.max));
  });

  it('a ReLU output keeps 0 as its lower bound (the zeros are a point mass, not a bin smear)', () => {
    const random = seededRandom(2);
    const relu = new Float32Array(100_000).map((_, i) => (i % 2 ? 0 : -Math.log(1 - random())));
    assert.equal(fed(new PercentileCollector({ percentile: 99.9 }), relu).range().min, 0);
  });
});

describe('entropy calibration', () => {
  it('clips a few huge outliers that MinMax keeps', () => {
    const r = fed(new EntropyCollector(), HEAVY).range();
    assert.ok(r.max < 20 && r.min > -20, JSON.stringify(r));
    assert.ok(r.max > 3, 'but keeps the bulk of the normal');
  });

  it("with onnxruntime's defaults (128 bins, 128 levels) it degenerates to MinMax", () => {
    const r = fed(new EntropyCollector({ bins: 128, quantizedBins: 128 }), HEAVY).range();
    assert.deepEqual(r, fed(new MinMaxCollector(), HEAVY).range());
  });

  it('the prefix-sum search picks the threshold a direct KL computation picks', () => {
    const random = seededRandom(9);
    for (let trial = 0; trial < 4; trial++) {
      const values = new Float32Array(20_000).map((_, i) => (i % 3 === 0 ? 0 : (random() < 0.999 ? 1 : 30) * -Math.log(1 - random())));
      const h = histogramOf(values, true);
      for (const levels of [16, 64]) assert.equal(entropyThreshold(h, levels), naiveEntropyThreshold(h, levels), `trial ${trial}, ${levels} levels`);
    }
  });
});

describe('MSE calibration', () => {
  it("the histogram's expected error matches the error measured with math.ts's quantizer", () => {
    const h = histogramOf(HEAVY);
    for (const r of [{ min: h.min, max: h.max }, { min: -4, max: 4 }, { min: -2, max: 30 }]) {
      const expected = expectedSquaredError(h, r, 'uint8');
      const measured = quantizationMse(HEAVY, r);
      assert.ok(Math.abs(expected / measured - 1) < 0.01, `${JSON.stringify(r)}: ${expected} vs ${measured}`);
    }
  });

  it('beats MinMax, Percentile and Entropy on heavy-tailed data, measured with the real quantizer', () => {
    const errors = Object.fromEntries(Object.entries({
      minmax: new MinMaxCollector(),
      percentile: new PercentileCollector(),
      entropy: new EntropyCollector(),
      mse: new MseCollector(),
    }).map(([name, c]) => [name, quantizationMse(HEAVY, fed(c, HEAVY).range())]));
    const { minmax, percentile, entropy, mse } = errors as Record<string, number>;
    assert.ok(mse! < 0.5 * minmax!, JSON.stringify(errors));
    assert.ok(mse! <= percentile! && mse! <= entropy!, JSON.stringify(errors));
  });

  it('searches only the magnitude when the range will be quantized symmetrically', () => {
    const c = fed(new MseCollector({ quantType: 'int8', symmetric: true }), HEAVY);
    const r = c.range();
    const full = { min: c.histogram.min, max: c.histogram.max };
    assert.ok(quantizationMse(HEAVY, r, 'int8', true) < quantizationMse(HEAVY, full, 'int8', true), JSON.stringify(r));
  });

  it('on a normal sample it clips the sparse tails a little', () => {
    const r = fed(new MseCollector(), NORMAL).range();
    const h = histogramOf(NORMAL);
    assert.ok(r.max < h.max && r.min > h.min && r.max > 3 && r.min < -3, JSON.stringify(r));
    assert.ok(quantizationMse(NORMAL, r) < quantizationMse(NORMAL, { min: h.min, max: h.max }));
  });
});

describe('histogram collectors', () => {
  const makers = {
    percentile: () => new PercentileCollector({ percentile: 99.99 }),
    entropy: () => new EntropyCollector(),
    mse: () => new MseCollector(),
  };
  for (const [name, make] of Object.entries(makers)) {
    it(`${name}: merging shards gives the range of one collector fed everything`, () => {
      const a = make();
      const b = make();
      a.update(HEAVY.subarray(0, 400_000));
      b.update(HEAVY.subarray(400_000));
      a.merge(b);
      assert.deepEqual(a.range(), fed(make(), HEAVY).range());
    });

    it(`${name}: NaN and Infinity are counted, not folded into the range`, () => {
      const c = make();
      c.update(Float32Array.of(1, NaN, Infinity, -2, 0.5, -Infinity));
      assert.equal(c.nonFinite, 3);
      const r = c.range();
      assert.ok(r.min >= -2 && r.max <= 1 && r.min < r.max, JSON.stringify(r));
    });
  }

  it('an empty collector gives the empty range', () => {
    for (const make of Object.values(makers)) assert.deepEqual(make().range(), { min: 0, max: 0 });
  });
});

/** TensorRT's search written out directly: P and Q built bin by bin, smoothed, normalised, compared. */
function naiveEntropyThreshold(h: StreamingHistogram, levels: number): number {
  const used = h.lastOccupied() + 1;
  if (used <= levels) return h.highest;
  const counts = Array.from(h.counts.subarray(0, used));
  counts[0]! -= h.zeros;
  const smooth = (d: number[]) => {
    const empty = d.filter((x) => x === 0).length;
    if (empty === 0 || empty === d.length) return d;
    return d.map((x) => (x === 0 ? 1e-4 : x - (1e-4 * empty) / (d.length - empty)));
  };
  let best = Infinity;
  let bestEnd = used;
  for (let end = levels; end <= used; end++) {
    const p = counts.slice(0, end);
    p[end - 1]! += counts.slice(end).reduce((s, c) => s + c, 0);
    const q = new Array<number>(end).fill(0);
    for (let g = 0; g < levels; g++) {
      const group = counts.slice(Math.floor((g * end) / levels), Math.floor(((g + 1) * end) / levels));
      const nonzero = group.filter((c) => c > 0).length;
      const sum = group.reduce((s, c) => s + c, 0);
      group.forEach((c, k) => { q[Math.floor((g * end) / levels) + k] = c > 0 ? sum / nonzero : 0; });
    }
    const ps = [...smooth(p), h.zeros];
    const qs = [...smooth(q), h.zeros];
    const sp = ps.reduce((s, x) => s + x, 0);
    const sq = qs.reduce((s, x) => s + x, 0);
    let kl = 0;
    ps.forEach((x, j) => { if (x > 0) kl += (x / sp) * Math.log(x / sp / (qs[j]! / sq)); });
    if (kl < best - 1e-12) {
      best = kl;
      bestEnd = end;
    }
  }
  return Math.min(h.edge(bestEnd), h.highest);
}
