/**
 * Dynamic int8's loops on WebAssembly SIMD (dynamic-simd.ts, used by dynamic.ts) against the
 * textbook: min/max of every channel, and q = clip(roundHalfEven(x / scale) + zp) per element
 * (math.ts quantizeValue over quantParams), for per-tensor and per-column weights, int8 and uint8,
 * symmetric or not, odd and even widths, pieces that split rows, and values on rounding ties.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dynamicSimdAvailable } from './dynamic-simd.ts';
import { quantizeWeightPieces, weightRanges } from './dynamic.ts';
import { quantizeValue, quantParams, quantRange } from './math.ts';

function seeded(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x / 2 ** 32; };
}

/** Gaussian-ish weights with some exact zeros and values that land on .5 of a step once scaled. */
function weights(K: number, N: number, seed: number): Float32Array {
  const r = seeded(seed);
  const w = new Float32Array(K * N);
  for (let i = 0; i < w.length; i++) {
    const u = r();
    w[i] = u < 0.05 ? 0 : u < 0.1 ? -0 : (r() + r() + r() - 1.5) * (1 + (i % 7));
  }
  return w;
}

function inPieces(w: Float32Array, piece: number) {
  return function* () {
    for (let offset = 0; offset < w.length; offset += piece) yield { values: w.subarray(offset, offset + piece), offset };
  };
}

function reference(w: Float32Array, K: number, N: number, perColumn: boolean, type: 'int8' | 'uint8', symmetric: boolean) {
  const channels = perColumn ? N : 1;
  const lo = new Float64Array(channels).fill(Infinity);
  const hi = new Float64Array(channels).fill(-Infinity);
  for (let i = 0; i < w.length; i++) {
    const c = perColumn ? i % N : 0;
    lo[c] = Math.min(lo[c]!, w[i]!);
    hi[c] = Math.max(hi[c]!, w[i]!);
  }
  const [qmin, qmax] = quantRange(type, symmetric);
  const params = Array.from({ length: channels }, (_, c) => quantParams(lo[c]!, hi[c]!, type, symmetric));
  const q = new Uint8Array(w.length);
  for (let i = 0; i < w.length; i++) {
    const p = params[perColumn ? i % N : 0]!;
    q[i] = quantizeValue(w[i]!, p.scale, p.zeroPoint, qmin, qmax) & 0xff;
  }
  return { lo, hi, q, params };
}

describe('dynamic int8 on WebAssembly SIMD', () => {
  it('runs here (Node 20 has WebAssembly SIMD)', () => assert.equal(dynamicSimdAvailable(), true));

  it('ranges and bytes equal the textbook for every layout, type and piece size', () => {
    let cases = 0;
    for (const [K, N] of [[64, 64], [37, 130], [50, 129], [9, 7], [300, 1], [1, 1000], [128, 10]] as const) {
      const w = weights(K, N, K * 1000 + N);
      for (const perColumn of [false, true]) {
        for (const type of ['int8', 'uint8'] as const) {
          for (const symmetric of [false, true]) {
            const want = reference(w, K, N, perColumn, type, symmetric);
            for (const piece of [w.length, 4096, 1000, 333, 64, N]) {
              const what = `[${K}, ${N}] ${perColumn ? 'per column' : 'per tensor'} ${type}${symmetric ? ' symmetric' : ''}, pieces of ${piece}`;
              const ranges = weightRanges(inPieces(w, piece), [K, N], perColumn ? 1 : null);
              assert.equal(ranges.finite, true, what);
              // ±0 may be kept either way; no scale tells them apart
              assert.deepEqual(Array.from(ranges.lo, (v) => v + 0), Array.from(want.lo, (v) => v + 0), `${what}: lo`);
              assert.deepEqual(Array.from(ranges.hi, (v) => v + 0), Array.from(want.hi, (v) => v + 0), `${what}: hi`);
              const got = quantizeWeightPieces(inPieces(w, piece), [K, N], perColumn ? 1 : null, type, symmetric);
              const bytes = new Uint8Array(got.q.buffer, got.q.byteOffset, got.q.length);
              for (let i = 0; i < w.length; i++) {
                if (bytes[i] !== want.q[i]) assert.fail(`${what}: element ${i} (${w[i]}): ${bytes[i]} vs ${want.q[i]}`);
              }
              cases++;
            }
          }
        }
      }
    }
    assert.equal(cases, 7 * 2 * 2 * 2 * 6);
  });

  it('values exactly on rounding ties round half to even, including at the clipping bounds', () => {
    // scale 1/64 (exact): x = (k + 0.5)/64 lands on ties for every k
    const w = Float32Array.from({ length: 1024 }, (_, i) => ((i % 300) - 150 + 0.5) / 64);
    w[0] = 127.5 / 64 * 4; w[1] = -128.5 / 64 * 4; // the range: scale 4/64 → ties beyond the ends clip
    for (const type of ['int8', 'uint8'] as const) {
      const want = reference(w, 1, 1024, false, type, false);
      const got = quantizeWeightPieces(inPieces(w, 1024), [1, 1024], null, type, false);
      assert.deepEqual(Array.from(new Uint8Array(got.q.buffer, got.q.byteOffset, got.q.length)), Array.from(want.q), type);
    }
  });

  it('NaN and ±Infinity are seen, wherever they are in a piece', () => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      for (const at of [0, 5, 63, 64, 130, 255]) {
        const w = weights(16, 16, 3);
        w[at] = bad;
        assert.equal(weightRanges(inPieces(w, 256), [16, 16], null).finite, false, `${bad} at ${at}, per tensor`);
        assert.equal(weightRanges(inPieces(w, 256), [16, 16], 1).finite, false, `${bad} at ${at}, per column`);
      }
    }
  });
});
