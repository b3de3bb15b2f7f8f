import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { channelRanges, packNibbles, quantizeArray, quantParams, quantRange, roundHalfEven } from './math.ts';

describe('quantization arithmetic (SPEC §8)', () => {
  it('rounds half to even, unlike Math.round', () => {
    assert.deepEqual([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4, 2.6].map(roundHalfEven), [0, 2, 2, -0, -2, -2, 2, 3]);
  });

  it('ranges per type', () => {
    assert.deepEqual(quantRange('uint8'), [0, 255]);
    assert.deepEqual(quantRange('int8'), [-128, 127]);
    assert.deepEqual(quantRange('int8', true), [-127, 127]);
    assert.deepEqual(quantRange('int4'), [-8, 7]);
    assert.deepEqual(quantRange('uint4'), [0, 15]);
  });

  it('uint8 asymmetric: range widened to include 0, zp = round(qmin − rmin/scale)', () => {
    const p = quantParams(0.5, 2.0, 'uint8');
    assert.equal(p.scale, Math.fround(2 / 255));
    assert.equal(p.zeroPoint, 0);
    const q = quantParams(-1, 3, 'uint8');
    assert.equal(q.scale, Math.fround(4 / 255));
    assert.equal(q.zeroPoint, roundHalfEven(255 / 4)); // 63.75 → 64
  });

  it('int8 symmetric: ±max|x|, zero point 0', () => {
    const p = quantParams(-0.3, 1.27, 'int8', true);
    assert.equal(p.scale, Math.fround((2 * 1.27) / 254));
    assert.equal(p.zeroPoint, 0);
  });

  it('tiny and degenerate ranges give scale 1, zero point 0', () => {
    assert.deepEqual(quantParams(0, 0, 'uint8'), { scale: 1, zeroPoint: 0 });
    assert.deepEqual(quantParams(0, 1e-40, 'int8', true), { scale: 1, zeroPoint: 0 });
  });

  it('quantizes with clipping and half-to-even rounding', () => {
    const p = { scale: 0.5, zeroPoint: 0 };
    assert.deepEqual([...quantizeArray([0.25, 0.75, 100, -100], p, 'int8', true)], [0, 2, 127, -127]);
  });

  it('per-channel ranges along an axis', () => {
    const r = channelRanges(Float32Array.of(1, -2, 3, 4, 5, -6), [2, 3], 0);
    assert.deepEqual([...r.min], [-2, -6]);
    assert.deepEqual([...r.max], [3, 5]);
    const c = channelRanges(Float32Array.of(1, -2, 3, 4, 5, -6), [2, 3], 1);
    assert.deepEqual([...c.min], [1, -2, -6]);
    assert.deepEqual([...c.max], [4, 5, 3]);
  });

  it('packs nibbles low first', () => {
    assert.deepEqual([...packNibbles([1, 2, 3])], [0x21, 0x03]);
    assert.deepEqual([...packNibbles([-1, -8])], [0x8f]);
  });
});
