// Quantization kernels shared by the passes (core/passes/quantize, on the main thread) and the
// worker pool (pool-kernels.mjs): plain JavaScript so a worker thread runs them without a TypeScript
// loader, and here beside pool-kernels.mjs because the desktop build copies the worker's files flat
// beside its bundle (build/build-electron.mjs). Types: quantize-kernels.d.mts.
// The arithmetic is SPEC §8's; core/passes/quantize/math.ts re-exports quantParamsInto and
// roundHalfEven from here so there is one implementation.
import { closeSync, openSync, readSync } from 'node:fs';
import { quantizeBlockRowsSimd, simdAvailable, simdInput } from './quantize-simd.mjs';

/** Round half to even (numpy.rint / std::nearbyint); Math.round rounds halves up. */
export function roundHalfEven(x) {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** quantParams into an object the caller reuses (block quantizers call it once per block). */
export function quantParamsInto(rmin, rmax, type, symmetric, out) {
  let lo = Math.min(rmin, 0);
  let hi = Math.max(rmax, 0);
  // quantRange without its array (this runs once per block: hundreds of thousands of times)
  // int7: onnxruntime's reduce_range for int8 weights (math.ts quantRange)
  const qmin = type === 'uint8' || type === 'uint4' ? 0 : type === 'int8' ? (symmetric ? -127 : -128) : type === 'int7' ? -64 : symmetric ? -7 : -8;
  const qmax = type === 'uint8' ? 255 : type === 'int8' ? 127 : type === 'uint4' ? 15 : type === 'int7' ? 64 : 7;
  if (symmetric) {
    const m = Math.max(Math.abs(lo), Math.abs(hi));
    lo = -m;
    hi = m;
  }
  const scale64 = (hi - lo) / (qmax - qmin);
  if (!Number.isFinite(scale64) || scale64 < 1e-30 || Math.fround(scale64) === 0) {
    out.scale = 1;
    out.zeroPoint = symmetric ? symmetricZeroPoint(type) : 0;
    return out;
  }
  out.scale = Math.fround(scale64);
  if (symmetric) out.zeroPoint = symmetricZeroPoint(type);
  else out.zeroPoint = Math.min(qmax, Math.max(qmin, roundHalfEven(qmin - lo / scale64)));
  return out;
}

/** The zero point of a symmetric range: 0 for signed types, the middle for unsigned ones. */
function symmetricZeroPoint(type) {
  return type === 'uint8' ? 128 : type === 'uint4' ? 8 : 0;
}

/** Adding and subtracting 1.5·2^52 rounds a double to an integer, ties to even (|x| < 2^51). */
const RNE = 6755399441055744;

/**
 * State of a block quantizer of a [K, N] weight along K (see weight-only.ts): the outputs, and
 * per-column scratch reused for every block-row.
 */
export function blockQuantizer(K, N, bits, blockSize, symmetric, layout) {
  const blocks = Math.ceil(K / blockSize);
  const type = bits === 4 ? (symmetric ? 'int4' : 'uint4') : symmetric ? 'int8' : 'uint8';
  const qmin = bits === 4 ? (symmetric ? -7 : 0) : symmetric ? -127 : 0;
  const qmax = bits === 4 ? (symmetric ? 7 : 15) : symmetric ? 127 : 255;
  const blob = (blockSize * bits) / 8;
  const data = new Uint8Array(layout === 'kn' ? K * N : N * blocks * blob);
  const stage = new Uint8Array(layout === 'kn' ? 0 : N * blob);
  return {
    K, N, bits, blockSize, symmetric, layout, blocks, type, qmin, qmax, blob,
    offset: symmetric ? 1 << (bits - 1) : 0,
    data,
    scales: new Float32Array(N * blocks),
    zeroPoints: new Uint8Array(N * blocks),
    lo: new Float32Array(N),
    hi: new Float32Array(N),
    scale: new Float64Array(N),
    clipLo: new Float64Array(N),
    clipHi: new Float64Array(N),
    add: new Float64Array(N),
    params: { scale: 1, zeroPoint: 0 },
    stage,
    stage32: new Int32Array(stage.buffer),
    data32: layout === 'kn' ? null : new Int32Array(data.buffer),
  };
}

/**
 * Quantizes whole block-rows: `values` holds rows [firstRow, firstRow + values.length / N) of the
 * weight, firstRow a multiple of blockSize (the last block-row may be short). Works along rows, so
 * every read is sequential: per block-row, each column's min and max, its scale and zero point,
 * then each value x / scale clipped to [qmin − zp, qmax − zp] (rounding commutes with clipping to
 * integer bounds), rounded half to even, plus zero point and storage offset. MatMulNBits' packed B
 * ('packed') takes two rows at a time into one byte per column, low nibble first; a short last
 * block is padded with the zero point (dequantizes to exactly 0). Returns false, and stops, at a
 * NaN or ±Infinity (the caller names it). Runs the WebAssembly SIMD kernels (quantize-simd.mjs, the
 * same bytes about four times faster) where the engine has them, else quantizeBlockRowsScalar.
 */
export function quantizeBlockRows(s, values, firstRow) {
  return simdAvailable() ? quantizeBlockRowsSimd(s, values, firstRow) : quantizeBlockRowsScalar(s, values, firstRow);
}

/** quantizeBlockRows in plain JavaScript: the reference the SIMD kernels are tested against. */
export function quantizeBlockRowsScalar(s, values, firstRow) {
  const { N, blockSize, blocks, blob, lo, hi, scale, clipLo, clipHi, add, scales, zeroPoints, data, params } = s;
  const rows = values.length / N;
  for (let r0 = 0; r0 < rows; r0 += blockSize) {
    const k0 = firstRow + r0;
    const b = k0 / blockSize;
    const len = Math.min(blockSize, s.K - k0);
    lo.fill(Infinity);
    hi.fill(-Infinity);
    let finite = true;
    for (let j = 0; j < len; j++) {
      const row = (r0 + j) * N;
      for (let n = 0; n < N; n++) {
        const v = values[row + n];
        if (v < lo[n]) lo[n] = v;
        if (v > hi[n]) hi[n] = v;
        if (v - v !== 0) finite = false; // NaN or ±Infinity
      }
    }
    if (!finite) return false;
    for (let n = 0; n < N; n++) {
      quantParamsInto(lo[n], hi[n], s.type, s.symmetric, params);
      const zp = params.zeroPoint;
      scale[n] = params.scale;
      clipLo[n] = s.qmin - zp;
      clipHi[n] = s.qmax - zp;
      add[n] = zp + s.offset;
      scales[n * blocks + b] = params.scale;
      zeroPoints[n * blocks + b] = zp + s.offset;
    }
    if (s.layout === 'kn') {
      for (let j = 0; j < len; j++) {
        const row = (r0 + j) * N;
        const out = (k0 + j) * N;
        for (let n = 0; n < N; n++) {
          const x = values[row + n] / scale[n];
          data[out + n] = (x < clipLo[n] ? clipLo[n] : x > clipHi[n] ? clipHi[n] : x) + RNE - RNE + add[n];
        }
      }
    } else {
      // MatMulNBits' B [N, blocks, blob]: this block-row's blob of every column goes to a small
      // column-major stage first, then out in one copy per column. Storing straight into B would
      // touch a different 4 KiB page every other column for every row (B's columns are
      // blocks·blob apart): a TLB miss per store, which is most of the time on a VM.
      const { stage, stage32, data32 } = s;
      if (s.bits === 8) {
        for (let j = 0; j < blockSize; j++) {
          if (j >= len) {
            for (let n = 0; n < N; n++) stage[n * blob + j] = add[n];
            continue;
          }
          const row = (r0 + j) * N;
          for (let n = 0; n < N; n++) {
            const x = values[row + n] / scale[n];
            stage[n * blob + j] = (x < clipLo[n] ? clipLo[n] : x > clipHi[n] ? clipHi[n] : x) + RNE - RNE + add[n];
          }
        }
      } else {
        for (let j = 0; j < blockSize; j += 2) {
          const at = j >> 1;
          const row0 = (r0 + j) * N;
          const row1 = row0 + N;
          if (j + 1 < len) {
            for (let n = 0; n < N; n++) {
              const s0 = scale[n], l = clipLo[n], h = clipHi[n], a = add[n];
              const x = values[row0 + n] / s0;
              const y = values[row1 + n] / s0;
              const qx = (x < l ? l : x > h ? h : x) + RNE - RNE + a;
              const qy = (y < l ? l : y > h ? h : y) + RNE - RNE + a;
              stage[n * blob + at] = (qx & 0xf) | ((qy & 0xf) << 4);
            }
          } else if (j < len) {
            for (let n = 0; n < N; n++) {
              const x = values[row0 + n] / scale[n];
              const qx = (x < clipLo[n] ? clipLo[n] : x > clipHi[n] ? clipHi[n] : x) + RNE - RNE + add[n];
              stage[n * blob + at] = (qx & 0xf) | ((add[n] & 0xf) << 4);
            }
          } else {
            for (let n = 0; n < N; n++) stage[n * blob + at] = (add[n] & 0xf) | ((add[n] & 0xf) << 4);
          }
        }
      }
      // blob is a multiple of 4 bytes (blockSize ≥ 16): copy 32-bit words
      const words = blob >> 2;
      for (let n = 0; n < N; n++) {
        const from = n * words;
        const to = (n * blocks + b) * words;
        for (let w = 0; w < words; w++) data32[to + w] = stage32[from + w];
      }
    }
  }
  return true;
}

/**
 * Rows per piece when a [K, N] weight is read in pieces: whole blocks, about 512 KiB (one block-row
 * of a 4096-wide weight), so a piece just read is still in the cache when it is quantized.
 */
export function blockRowsPerPiece(N, blockSize) {
  return blockSize * Math.max(1, Math.floor((512 << 10) / (4 * N * blockSize)));
}

/**
 * A worker task: block-quantizes a float32 [K, N] weight stored at `offset` in `path` (external
 * data, or a payload of a lazily read model), reading it in pieces of whole block-rows through one
 * buffer. `finite` false: a NaN or ±Infinity was met (the outputs are then incomplete).
 */
export function quantizeBlocksFromFile({ path, offset, K, N, bits, blockSize, symmetric, layout }) {
  const s = blockQuantizer(K, N, bits, blockSize, symmetric, layout);
  const rows = blockRowsPerPiece(N, blockSize);
  // read straight into the SIMD kernels' memory where they run (no copy), else into a scratch buffer
  const simd = simdAvailable();
  const scratch = simd ? null : new Float32Array(rows * N);
  const fd = openSync(path, 'r');
  let finite = true;
  try {
    for (let k0 = 0; k0 < K && finite; k0 += rows) {
      const pieceRows = Math.min(rows, K - k0);
      const piece = simd ? simdInput(s, pieceRows) : scratch.subarray(0, pieceRows * N);
      const bytes = new Uint8Array(piece.buffer, piece.byteOffset, piece.byteLength);
      for (let done = 0; done < bytes.length;) {
        const got = readSync(fd, bytes, done, bytes.length - done, offset + k0 * N * 4 + done);
        if (got === 0) throw new Error(`${path}: ended early while reading a weight (the file changed after the model was opened?)`);
        done += got;
      }
      finite = quantizeBlockRows(s, piece, k0);
    }
  } finally {
    closeSync(fd);
  }
  return { finite, blocks: s.blocks, data: s.data, scales: s.scales, zeroPoints: s.zeroPoints };
}
