/**
 * The SIMD block quantizer (quantize-simd.mjs) against the scalar JavaScript one it replaces
 * (quantizeBlockRowsScalar): the same bytes for every layout, width and block shape the passes use —
 * ties that round to even, short last blocks padded with the zero point, widths that are not a
 * multiple of 4 (the kernels read and write a column past the end), constant and all-positive
 * blocks, pieces of several block-rows — and the same refusal of NaN and ±Infinity. Also the
 * assembler the kernels are written for (wasm-assembler.mjs).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { blockQuantizer, quantizeBlockRows, quantizeBlockRowsScalar, type BlockLayout, type BlockQuantizerState } from './quantize-kernels.mjs';
import { KERNELS, quantizeBlockRowsSimd, simdAvailable, simdInput } from './quantize-simd.mjs';
import { assembleWat, instantiateWat } from './wasm-assembler.mjs';

/** A weight with the awkward values: zeros, exact halves of small steps (ties), wide outliers, a constant column. */
function awkwardWeight(K: number, N: number, seed: number): Float32Array {
  let state = seed;
  const random = () => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const w = new Float32Array(K * N);
  for (let i = 0; i < w.length; i++) {
    const r = random();
    w[i] = r < 0.1 ? 0 : r < 0.3 ? Math.round((random() - 0.5) * 32) / 2 : (random() - 0.5) * (i % 5 === 0 ? 8 : 1);
  }
  for (let k = 0; k < K; k++) w[k * N] = 0.25; // column 0 constant
  if (N > 1) for (let k = 0; k < K; k++) w[k * N + 1] = Math.abs(w[k * N + 1]!); // column 1 never negative
  return w;
}

/** Runs `kernel` over w in pieces of `piece` rows (whole blocks, the last one short), as the passes do. */
function quantizeInPieces(kernel: typeof quantizeBlockRows, w: Float32Array, K: number, N: number, bits: 4 | 8, blockSize: number, symmetric: boolean, layout: BlockLayout, piece: number): BlockQuantizerState & { finite: boolean } {
  const s = blockQuantizer(K, N, bits, blockSize, symmetric, layout);
  let finite = true;
  for (let k0 = 0; k0 < K && finite; k0 += piece) finite = kernel(s, w.subarray(k0 * N, Math.min(K, k0 + piece) * N), k0);
  return { ...s, finite };
}

const bytes = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

describe('SIMD block quantizer', () => {
  it('runs here (Node 20 has WebAssembly SIMD), so the tests below compare two kernels, not one with itself', () => {
    assert.equal(simdAvailable(), true);
  });

  it('gives the scalar kernel\'s bytes for every layout, width and block shape', () => {
    let compared = 0;
    for (const [K, N] of [[64, 8], [70, 13], [33, 1], [40, 2], [17, 3], [96, 4101], [256, 6]] as const) {
      const w = awkwardWeight(K, N, K * 31 + N);
      for (const bits of [4, 8] as const) {
        for (const symmetric of [false, true]) {
          for (const layout of ['packed', 'kn'] as const) {
            for (const blockSize of [16, 32, 64]) {
              const piece = blockSize * 2;
              const scalar = quantizeInPieces(quantizeBlockRowsScalar, w, K, N, bits, blockSize, symmetric, layout, piece);
              const simd = quantizeInPieces(quantizeBlockRowsSimd, w, K, N, bits, blockSize, symmetric, layout, piece);
              const what = `K ${K} N ${N} ${bits} bits ${symmetric ? 'symmetric' : 'asymmetric'} ${layout} block ${blockSize}`;
              assert.equal(simd.finite, true, what);
              assert.ok(bytes(simd.data).equals(bytes(scalar.data)), `data: ${what}`);
              assert.ok(bytes(simd.scales).equals(bytes(scalar.scales)), `scales: ${what}`);
              assert.ok(bytes(simd.zeroPoints).equals(bytes(scalar.zeroPoints)), `zero points: ${what}`);
              compared++;
            }
          }
        }
      }
    }
    assert.equal(compared, 7 * 2 * 2 * 2 * 3);
  });

  it('rounds ties to even as the scalar kernel does (a range of 0..15 at 4 bits is a step of exactly 1)', () => {
    const K = 32;
    const N = 4;
    const w = new Float32Array(K * N);
    // every column spans [0, 15]: scale 1, zero point 0; the other rows are x.5 ties
    for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) w[k * N + n] = k === 0 ? 0 : k === 1 ? 15 : ((k + n) % 15) + 0.5;
    const simd = quantizeInPieces(quantizeBlockRowsSimd, w, K, N, 4, 32, false, 'kn', 32);
    const scalar = quantizeInPieces(quantizeBlockRowsScalar, w, K, N, 4, 32, false, 'kn', 32);
    assert.deepEqual([...simd.scales], [1, 1, 1, 1]);
    // 2.5 → 2, 3.5 → 4: half to even, not half up
    for (let k = 2; k < K; k++) for (let n = 0; n < N; n++) {
      const x = ((k + n) % 15) + 0.5;
      const even = Math.floor(x) % 2 === 0 ? Math.floor(x) : Math.ceil(x);
      assert.equal(simd.data[k * N + n], Math.min(15, even), `row ${k} column ${n}: ${x}`);
    }
    assert.ok(bytes(simd.data).equals(bytes(scalar.data)));
  });

  it('pads a short last block with the zero point, as MatMulNBits stores it', () => {
    const K = 40; // blocks of 32: the second holds 8 rows
    const N = 5;
    const w = awkwardWeight(K, N, 9);
    for (const bits of [4, 8] as const) {
      const simd = quantizeInPieces(quantizeBlockRowsSimd, w, K, N, bits, 32, false, 'packed', 64);
      const blob = (32 * bits) / 8;
      for (let n = 0; n < N; n++) {
        const zp = simd.zeroPoints[n * 2 + 1]!;
        const padding = simd.data.subarray((n * 2 + 1) * blob + (8 * bits) / 8, (n * 2 + 2) * blob);
        assert.ok(padding.every((b) => b === (bits === 8 ? zp : zp | (zp << 4))), `column ${n}, ${bits} bits`);
      }
    }
  });

  it('stops at NaN or ±Infinity like the scalar kernel, wherever it is', () => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      for (const at of [0, 13 * 7 + 12, 63 * 13 + 12]) {
        const w = awkwardWeight(64, 13, 5);
        w[at] = bad;
        for (const layout of ['packed', 'kn'] as const) {
          assert.equal(quantizeInPieces(quantizeBlockRowsSimd, w, 64, 13, 4, 32, false, layout, 64).finite, false, `${bad} at ${at}, ${layout}`);
          assert.equal(quantizeInPieces(quantizeBlockRowsScalar, w, 64, 13, 4, 32, false, layout, 64).finite, false);
        }
      }
    }
  });

  it('reads input filled in place (simdInput, as a worker reads a file) the same as a copied piece', () => {
    const K = 96;
    const N = 37;
    const w = awkwardWeight(K, N, 3);
    const copied = quantizeInPieces(quantizeBlockRowsSimd, w, K, N, 8, 32, false, 'packed', 64);
    const s = blockQuantizer(K, N, 8, 32, false, 'packed');
    for (let k0 = 0; k0 < K; k0 += 64) {
      const rows = Math.min(64, K - k0);
      const input = simdInput(s, rows);
      input.set(w.subarray(k0 * N, (k0 + rows) * N));
      assert.equal(quantizeBlockRowsSimd(s, input, k0), true);
    }
    assert.ok(bytes(s.data).equals(bytes(copied.data)));
    assert.ok(bytes(s.scales).equals(bytes(copied.scales)));
  });

  it('refuses a simdInput view kept across a growth of the memory (it is detached) instead of quantizing nothing', () => {
    const small = blockQuantizer(32, 8, 8, 32, false, 'packed');
    const stale = simdInput(small, 32);
    simdInput(blockQuantizer(32, 1 << 20, 8, 32, false, 'packed'), 32); // 128 MiB of input: the memory grows
    assert.throws(() => quantizeBlockRowsSimd(small, stale, 0), /no values \(a simdInput view used after the wasm memory grew\?\)/);
    const fresh = simdInput(small, 32);
    fresh.fill(0.5);
    assert.equal(quantizeBlockRowsSimd(small, fresh, 0), true);
  });

  it('quantizeBlockRows runs the SIMD kernel here', () => {
    const w = awkwardWeight(64, 8, 1);
    const viaDispatch = quantizeInPieces(quantizeBlockRows, w, 64, 8, 4, 32, true, 'packed', 64);
    const simd = quantizeInPieces(quantizeBlockRowsSimd, w, 64, 8, 4, 32, true, 'packed', 64);
    assert.ok(bytes(viaDispatch.data).equals(bytes(simd.data)));
  });
});

describe('WebAssembly assembler', () => {
  it('assembles a function to the bytes of the binary format', () => {
    const wasm = assembleWat(`(module (memory (export "m") 1)
      (func (export "add") (param $a i32) (param $b i32) (result i32) (i32.add (local.get $a) (local.get $b))))`);
    // magic, version; type (i32 i32) → i32; one function of type 0; memory min 1; exports "m", "add"; code
    assert.deepEqual([...wasm], [
      0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
      0x01, 0x07, 0x01, 0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7f,
      0x03, 0x02, 0x01, 0x00,
      0x05, 0x03, 0x01, 0x00, 0x01,
      0x07, 0x0b, 0x02, 0x01, 0x6d, 0x02, 0x00, 0x03, 0x61, 0x64, 0x64, 0x00, 0x00,
      0x0a, 0x09, 0x01, 0x07, 0x00, 0x20, 0x00, 0x20, 0x01, 0x6a, 0x0b,
    ]);
    const { add } = instantiateWat(`(module (memory (export "m") 1)
      (func (export "add") (param $a i32) (param $b i32) (result i32) (i32.add (local.get $a) (local.get $b))))`) as { add: (a: number, b: number) => number };
    assert.equal(add(2, 3), 5);
  });

  it('runs loops, branches and memory (a sum of i32s)', () => {
    const exports = instantiateWat(`(module (memory (export "memory") 1)
      (func (export "sum") (param $p i32) (param $n i32) (result i32) (local $total i32) (local $end i32)
        (local.set $end (i32.add (local.get $p) (i32.shl (local.get $n) (i32.const 2))))
        (block $done (loop $next
          (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
          (local.set $total (i32.add (local.get $total) (i32.load (local.get $p))))
          (local.set $p (i32.add (local.get $p) (i32.const 4)))
          (br $next)))
        (local.get $total)))`);
    const { sum, memory } = exports as { sum: (p: number, n: number) => number; memory: { buffer: ArrayBuffer } };
    new Int32Array(memory.buffer).set([5, -2, 40, 7], 4);
    assert.equal(sum(16, 4), 50);
  });

  it('assembles the quantizer kernels into a module that compiles, with the kernels the quantizer calls', () => {
    const exports = instantiateWat(KERNELS);
    for (const name of ['memory', 'minmax', 'params', 'packed8', 'packed4', 'rowMajor']) assert.ok(name in exports, name);
  });

  it('names what it does not accept', () => {
    assert.throws(() => assembleWat('(module (func (export "f") (i32.frobnicate (i32.const 1))))'), /unknown instruction i32\.frobnicate/);
    assert.throws(() => assembleWat('(module (func (export "f") (br $nowhere)))'), /unknown label \$nowhere/);
    assert.throws(() => assembleWat('(module (func (export "f") (local.get $x)))'), /unknown local \$x/);
    assert.throws(() => assembleWat('(module (func (export "f")'), /missing "\)"/);
    assert.throws(() => assembleWat('(module (func (i32.const 1)))'), /every func is exported/);
  });
});
