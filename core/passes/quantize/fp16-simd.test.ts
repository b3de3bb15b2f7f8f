/**
 * The fp16 pass's float32 → float16 conversion on WebAssembly SIMD (fp16-simd.ts) against the scalar
 * loop it stands in for: the same bits and the same clamp counts for every class of value.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { toHalfClampedInto, toHalfClampedScalar } from './fp16.ts';
import { toHalfClampedSimd } from './fp16-simd.ts';

/** Deterministic 32-bit patterns (xorshift). */
function randomBits(n: number, seed: number): Uint32Array {
  const out = new Uint32Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out[i] = x;
  }
  return out;
}

function bothWays(values: Float32Array, what: string): void {
  const scalar = new Uint16Array(values.length + 3);
  const simd = new Uint16Array(values.length + 3);
  const a = toHalfClampedScalar(values, scalar, 3);
  const b = toHalfClampedInto(values, simd, 3);
  for (let i = 0; i < scalar.length; i++) {
    if (scalar[i] !== simd[i]) assert.fail(`${what}: element ${i - 3} (${values[i - 3]}, bits 0x${new Uint32Array(values.buffer, values.byteOffset, values.length)[i - 3]!.toString(16)}): scalar 0x${scalar[i]!.toString(16)}, SIMD 0x${simd[i]!.toString(16)}`);
  }
  assert.deepEqual(b, a, `${what}: counts`);
}

describe('fp16 conversion on WebAssembly SIMD', () => {
  it('runs here (Node 20 has WebAssembly SIMD)', () => {
    assert.notEqual(toHalfClampedSimd(new Float32Array(8), new Uint16Array(8), 0, { lowBits: 1, lowHalf: 1, highBits: 0x7f000000, highHalf: 0x7bff }), null);
  });

  it('every class of value: zeros, ties at bit 13, the normal/subnormal border, clamped tiny and huge, ±Infinity, NaNs', () => {
    const special = [
      0, -0, 1, -1, 0.5, 65504, -65504, 1e4, -1e4, 1e4 + 1, 1.0009765625, 1.00048828125, 1.00146484375, // ties: round to even
      2 ** -14, -(2 ** -14), 2 ** -14 - 2 ** -30, 2 ** -15, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 5 * 2 ** -26, // subnormal halves and ties
      1e-7, -1e-7, Math.fround(1e-7), 9e-8, 1e-8, 1e-30, 1e-45, -1e-45, 3.4e38, -3.4e38, Infinity, -Infinity, NaN, -NaN,
      0.1, -0.1, 0.3333, 1000.5, 2047.5, 2048.5, 4095.9, 60000, 65519.99, 65520,
    ];
    // every length from 0 to 40 (tails of every size, and under the SIMD threshold) and a long run
    for (let n = 0; n <= 40; n++) bothWays(Float32Array.from({ length: n }, (_, i) => special[i % special.length]!), `special ×${n}`);
    bothWays(Float32Array.from({ length: 1000 }, (_, i) => special[(i * 7) % special.length]! * (i % 3 === 0 ? -1 : 1)), 'special, mixed');
    // NaN payloads and signalling NaNs
    const nans = new Uint32Array([0x7fc00000, 0xffc00000, 0x7f800001, 0xff800001, 0x7fffffff, 0xffffffff, 0x7fa00000, 0x7f800000]);
    bothWays(new Float32Array(Uint32Array.from({ length: 64 }, (_, i) => nans[i % 8]!).buffer), 'NaN payloads');
  });

  it('random bit patterns (every exponent) and weight-like values', () => {
    bothWays(new Float32Array(randomBits(1 << 16, 12345).buffer), 'random bits');
    const weights = new Float32Array(randomBits(10_003, 777).buffer.slice(0)).map((_, i) => Math.sin(i * 12.9898) * 10 ** ((i % 13) - 9));
    bothWays(weights, 'weight-like values across 13 decades');
    // a view that does not start at the buffer's start
    bothWays(new Float32Array(randomBits(4099, 9).buffer, 12, 4000), 'offset view');
  });
});
