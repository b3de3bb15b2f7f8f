import { WhittleError } from '../../../api/errors.ts';
import { DataType } from '../../../native-models/ir/dtypes.ts';
import type { Graph, Model, Node } from '../../../native-models/ir/model.ts';
import { createPassContext, tensorBytes, type Pass, type PassContext, type PassReport } from '../pass.ts';
import { checkFiniteTensor, type ConstantWeight, findConstantWeight, float32Pieces, floatWeightOf, keepsOrder, materialise } from './constant-weight.ts';
import { addFloatInitializer, addInitializer, adoptInitializer, intAttr, isExcluded, makeNode, NameAllocator, nodeCandidates, removeUnread, replaceNode } from './graph-edit.ts';
import { packNibbles, quantParamsInto, quantRange, type QuantParams, type QuantType } from './math.ts';
import { ensureDomain, ensureIrVersion, IR_INITIALIZERS_NOT_INPUTS, requireOpset } from './opset.ts';

/**
 * Weight-only quantization of MatMul weights [K, N] in blocks of `blockSize` along K, round to
 * nearest (RTN). Two encodings (SPEC §8):
 * - `matmulnbits`: com.microsoft.MatMulNBits(A, B, scales[, zero_points]) with B uint8
 *   [N, k_blocks, blockSize·bits/8] (low nibble first), scales [N·k_blocks], zero points packed two
 *   per byte per column for 4 bits (absent: 8, or 128 for 8 bits). Runs on CPU, CUDA and WebGPU.
 * - `dq`: DequantizeLinear(int4/uint4 [K, N], scale [k_blocks, N], zp, axis 0, block_size) → MatMul,
 *   standard ONNX from opset 21 (the model's opset is raised when that is safe).
 * Symmetric blocks use ±max|x| and the range [−7, 7] (int8: [−127, 127]) so every weight is within
 * half a step of its dequantized value; asymmetric blocks widen [min, max] to include 0.
 * K not a multiple of blockSize: the last block holds fewer weights. MatMulNBits still stores it
 * whole, padded with the zero point (weights that dequantize to exactly 0, multiplied by nothing:
 * the kernel reads only K rows); the DQ form needs no padding (ONNX divides K by the block size
 * rounding up).
 */
export interface WeightOnlyOptions {
  bits?: 4 | 8;
  /** Weights per block along K: a power of two from 16 to 256 (default 32). */
  blockSize?: number;
  /** Symmetric blocks without zero points (default false: asymmetric, a zero point per block). */
  symmetric?: boolean;
  format?: 'matmulnbits' | 'dq';
  /** Node names or op types to leave in float. */
  exclude?: string[];
  /** MatMulNBits accuracy_level (onnxruntime: 4 = int8 activations on CPU); unset by default. */
  accuracyLevel?: number;
}

export interface BlockQuantized {
  K: number;
  N: number;
  blocks: number;
  /** Quantized values, [K, N] row-major: unsigned storage values (stored = signed + 2^(bits−1) when symmetric). */
  q: Uint8Array;
  /** [N, blocks]: scale of column n, block b at n·blocks + b. */
  scales: Float32Array;
  /** [N, blocks], unsigned storage values (symmetric: the implied 8 or 128). */
  zeroPoints: Uint8Array;
}

/** RTN block quantization of a [K, N] weight along K, SPEC §8 arithmetic per block. */
export function quantizeBlockwise(w: Float32Array, K: number, N: number, bits: 4 | 8, blockSize: number, symmetric: boolean): BlockQuantized {
  const r = quantizeBlocks(() => [{ values: w, offset: 0 }], K, N, bits, blockSize, symmetric, 'kn');
  return { K, N, blocks: r.blocks, q: r.data, scales: r.scales, zeroPoints: r.zeroPoints };
}

/** Adding and subtracting 1.5·2^52 rounds a double to an integer, ties to even (|x| < 2^51). */
const RNE = 6755399441055744;
/** Columns transposed at a time: 128 columns × 256 rows of float32 is 128 KiB, 128 × 32 is 16 KiB. */
const TILE_COLUMNS = 128;
/** Elements per piece when a weight is copied in pieces: whole block-rows of about 4 MiB. */
const PIECE_BYTES = 4 << 20;

type Pieces = () => Iterable<{ values: Float32Array; offset: number }>;

/**
 * The block quantizer behind quantizeBlockwise and the pass. `pieces` yields the [K, N] weight in
 * row-major order in pieces of whole block-rows (blockSize rows; the last may be short). Each
 * block-row is transposed into a small tile (column-major, so each block is contiguous: the naive
 * column walk strides N·4 bytes per element and misses the cache on every one), quantized block by
 * block, and written either as q [K, N] ('kn', for the DQ form) or straight into MatMulNBits' packed
 * B ('packed': no [K, N] intermediate at all).
 */
export function quantizeBlocks(pieces: Pieces, K: number, N: number, bits: 4 | 8, blockSize: number, symmetric: boolean, layout: 'kn' | 'packed'): { blocks: number; data: Uint8Array; scales: Float32Array; zeroPoints: Uint8Array } {
  const blocks = Math.ceil(K / blockSize);
  const type: QuantType = bits === 4 ? (symmetric ? 'int4' : 'uint4') : symmetric ? 'int8' : 'uint8';
  const [qmin, qmax] = quantRange(type, symmetric);
  const offset = symmetric ? 1 << (bits - 1) : 0;
  const blob = (blockSize * bits) / 8;
  const data = new Uint8Array(layout === 'kn' ? K * N : N * blocks * blob);
  const scales = new Float32Array(N * blocks);
  const zeroPoints = new Uint8Array(N * blocks);
  // columns are handled TILE_COLUMNS at a time: the transposed tile stays in the L1 cache
  const tileColumns = Math.min(N, TILE_COLUMNS);
  const tile = new Float32Array(tileColumns * blockSize);
  const qs = new Uint8Array(blockSize);
  const p: QuantParams = { scale: 1, zeroPoint: 0 };
  for (const { values, offset: at } of pieces()) {
    const firstRow = at / N;
    const rows = values.length / N;
    for (let r0 = 0; r0 < rows; r0 += blockSize) {
      const k0 = firstRow + r0;
      const b = k0 / blockSize;
      const len = Math.min(blockSize, K - k0);
      for (let n0 = 0; n0 < N; n0 += tileColumns) {
        const cols = Math.min(tileColumns, N - n0);
        for (let j = 0; j < len; j++) {
          const row = (r0 + j) * N + n0;
          for (let c = 0; c < cols; c++) tile[c * blockSize + j] = values[row + c]!;
        }
        for (let c = 0; c < cols; c++) {
          const n = n0 + c;
          const base = c * blockSize;
          let lo = Infinity;
          let hi = -Infinity;
          for (let j = 0; j < len; j++) {
            const v = tile[base + j]!;
            if (v < lo) lo = v;
            if (v > hi) hi = v;
          }
          quantParamsInto(lo, hi, type, symmetric, p);
          const scale = p.scale;
          const zp = p.zeroPoint;
          scales[n * blocks + b] = scale;
          zeroPoints[n * blocks + b] = zp + offset;
          // quantizeValue inlined: x / scale clipped to [qmin − zp, qmax − zp] (rounding commutes
          // with clipping to integer bounds), rounded half to even, plus zero point and storage offset
          const clipLo = qmin - zp;
          const clipHi = qmax - zp;
          const add = zp + offset;
          for (let j = 0; j < len; j++) {
            const x = tile[base + j]! / scale;
            const y = x < clipLo ? clipLo : x > clipHi ? clipHi : x;
            qs[j] = y + RNE - RNE + add;
          }
          if (layout === 'kn') {
            for (let j = 0; j < len; j++) data[(k0 + j) * N + n] = qs[j]!;
          } else {
            // a short last block is padded with the zero point (dequantizes to exactly 0)
            for (let j = len; j < blockSize; j++) qs[j] = add;
            const o = (n * blocks + b) * blob;
            if (bits === 8) data.set(qs, o);
            else for (let j = 0; j < blob; j++) data[o + j] = (qs[2 * j]! & 0xf) | ((qs[2 * j + 1]! & 0xf) << 4);
          }
        }
      }
    }
  }
  return { blocks, data, scales, zeroPoints };
}

/** Rows per piece when a weight must be copied: whole blocks, about PIECE_BYTES. */
export function blockRowsPerPiece(N: number, blockSize: number): number {
  return blockSize * Math.max(1, Math.floor(PIECE_BYTES / (4 * N * blockSize)));
}

/** MatMulNBits' zero points: per column ceil(blocks·bits/8) bytes, two 4-bit values per byte, low first. */
export function packZeroPoints(bq: Pick<BlockQuantized, 'N' | 'blocks' | 'zeroPoints'>, bits: 4 | 8): Uint8Array {
  if (bits === 8) return bq.zeroPoints.slice();
  const perColumn = Math.ceil(bq.blocks / 2);
  const out = new Uint8Array(bq.N * perColumn);
  for (let n = 0; n < bq.N; n++) out.set(packNibbles(bq.zeroPoints.subarray(n * bq.blocks, (n + 1) * bq.blocks)), n * perColumn);
  return out;
}

interface Plan { graph: Graph; node: Node; weight: ConstantWeight }

function planNode(graph: Graph, node: Node, producers: Map<string, Node>, file: string | null, scratch: Float32Array): Plan | string {
  const w = floatWeightOf(graph, node, producers);
  if (typeof w === 'string') return w;
  if (w.dims.length !== 2) return `its weight has shape [${w.dims}] (only 2-D [K, N] weights are quantized)`;
  checkFiniteTensor(w.source, scratch, node, w.sourceName, file);
  return { graph, node, weight: w };
}

function checkOptions(bits: number, blockSize: number): void {
  if (bits !== 4 && bits !== 8) throw new WhittleError('BAD_USAGE', `weight-only quantization: bits must be 4 or 8, not ${bits}`);
  if (!Number.isInteger(blockSize) || blockSize < 16 || blockSize > 256 || (blockSize & (blockSize - 1)) !== 0) {
    throw new WhittleError('BAD_USAGE', `--block-size ${blockSize}: must be a power of two from 16 to 256 (16, 32, 64, 128, 256)`);
  }
}

export const weightOnlyQuantizePass: Pass<WeightOnlyOptions> = {
  name: 'quantize-weight-only',
  async run(model: Model, options: WeightOnlyOptions, ctx: PassContext = createPassContext()): Promise<PassReport> {
    const bits = options.bits ?? 4;
    const blockSize = options.blockSize ?? 32;
    const symmetric = options.symmetric ?? false;
    const format = options.format ?? 'matmulnbits';
    checkOptions(bits, blockSize);
    const bytesBefore = tensorBytes(model);
    const excluded: string[] = [];
    const warnings: string[] = [];
    const warn = (m: string) => { warnings.push(m); ctx.warn(m); };

    const plans: Plan[] = [];
    // one reused buffer for reading weights in pieces (see float32Pieces), grown for wide weights
    let scratch = new Float32Array(PIECE_BYTES / 4);
    const scratchFor = (elements: number) => (scratch.length >= elements ? scratch : (scratch = new Float32Array(elements)));
    const { candidates, producersOf } = nodeCandidates(model, (n) => n.opType === 'MatMul');
    for (const [i, { g, n }] of candidates.entries()) {
      ctx.checkpoint();
      ctx.progress('plan', i, candidates.length);
      if (isExcluded(n, options.exclude)) { excluded.push(n.label); continue; }
      const plan = planNode(g, n, producersOf(g), model.path, scratch);
      if (typeof plan === 'string') {
        excluded.push(n.label);
        warn(`${n.label} (${n.opType}) left in float: ${plan}`);
      } else plans.push(plan);
    }
    // Gemm is the other op with a [K, N] weight; MatMulNBits has no bias or transB to take it over
    for (const g of model.graphs()) {
      for (const n of g.nodes) {
        if (n.opType !== 'Gemm' || n.domain !== '' || isExcluded(n, options.exclude) || !n.inputs[1] || !g.constant(n.inputs[1])) continue;
        excluded.push(n.label);
        warn(`${n.label} (Gemm) left in float: weight-only quantization rewrites MatMul only (into ${format === 'dq' ? 'DequantizeLinear → MatMul' : 'MatMulNBits'}); use --method dynamic or static for Gemm`);
      }
    }
    if (plans.length === 0) warn(nothingQuantized(model, bits, candidates.length));
    if (plans.length > 0) {
      if (format === 'dq') requireOpset(model, 21, `${bits}-bit blocked DequantizeLinear`);
      else ensureDomain(model, 'com.microsoft', 1);
      ensureIrVersion(model, IR_INITIALIZERS_NOT_INPUTS);
    }

    const names = new NameAllocator(model);
    const made = new Map<string, string[]>();
    const removable = { nodes: new Set<Node>(), names: new Set<string>() };
    let padded = 0;
    for (const [i, { graph, node, weight }] of plans.entries()) {
      ctx.checkpoint();
      ctx.progress('quantize', i, plans.length);
      const [K, N] = weight.dims as [number, number];
      if (K % blockSize !== 0) padded++;
      const key = node.inputs[1]!;
      let tensors = made.get(key);
      if (!tensors || !graph.initializers.has(tensors[0]!)) {
        let pieces: Pieces;
        if (keepsOrder(weight) && weight.source.dataType === DataType.FLOAT) {
          // the stored values in stored order: read in pieces of whole block-rows, never copied whole
          const rows = blockRowsPerPiece(N, blockSize);
          pieces = () => float32Pieces(weight.source, scratchFor(rows * N), rows * N);
        } else {
          const all = [{ values: materialise(graph, weight), offset: 0 }];
          pieces = () => all;
        }
        const r = quantizeBlocks(pieces, K, N, bits, blockSize, symmetric, format === 'dq' ? 'kn' : 'packed');
        tensors = format === 'dq'
          ? addDqTensors(graph, key, { K, N, blocks: r.blocks, q: r.data, scales: r.scales, zeroPoints: r.zeroPoints }, bits, symmetric, names)
          : addNBitsTensors(graph, key, { N, ...r }, bits, blockSize, symmetric, names);
        made.set(key, tensors);
      }
      const base = node.name || node.outputs[0]!;
      if (format === 'dq') {
        const dq = names.fresh(`${key}_dequantized`);
        const attrs = [intAttr('axis', 0), intAttr('block_size', blockSize)];
        replaceNode(graph, node, [
          makeNode('DequantizeLinear', tensors, [dq], names.fresh(`${base}_DequantizeWeight`), '', attrs),
          makeNode('MatMul', [node.inputs[0]!, dq], [...node.outputs], node.name),
        ]);
      } else {
        const attrs = [intAttr('K', K), intAttr('N', N), intAttr('bits', bits), intAttr('block_size', blockSize)];
        if (options.accuracyLevel !== undefined) attrs.push(intAttr('accuracy_level', options.accuracyLevel));
        replaceNode(graph, node, [makeNode('MatMulNBits', [node.inputs[0]!, ...tensors], [...node.outputs], names.fresh(`${base}_MatMulNBits`), 'com.microsoft', attrs)]);
      }
      for (const n of weight.chain) removable.nodes.add(n);
      removable.names.add(weight.sourceName);
      removable.names.add(key);
    }
    ctx.progress('quantize', plans.length, plans.length);
    if (padded && format === 'matmulnbits') warn(`${padded} weight(s) have K not a multiple of ${blockSize}: their last block is padded with zero-point values (dequantized 0)`);
    removeUnread(model, removable);
    return {
      pass: this.name, nodesChanged: plans.length, bytesBefore, bytesAfter: tensorBytes(model), excluded, warnings,
      details: { bits, blockSize, symmetric, format, quantized: plans.map((p) => p.node.label) },
    };
  },
};

/** MatMulNBits' tensors from quantizeBlocks' 'packed' output (`data` is B, taken over without a copy). */
function addNBitsTensors(graph: Graph, key: string, bq: { N: number; blocks: number; data: Uint8Array; scales: Float32Array; zeroPoints: Uint8Array }, bits: 4 | 8, blockSize: number, symmetric: boolean, names: NameAllocator): string[] {
  const b = names.fresh(`${key}_Q${bits}`);
  const s = names.fresh(`${key}_scales`);
  adoptInitializer(graph, b, DataType.UINT8, [bq.N, bq.blocks, (blockSize * bits) / 8], bq.data);
  addFloatInitializer(graph, s, [bq.N * bq.blocks], bq.scales);
  if (symmetric) return [b, s];
  const zp = names.fresh(`${key}_zero_points`);
  const zps = packZeroPoints(bq, bits);
  addInitializer(graph, zp, DataType.UINT8, [zps.length], zps);
  return [b, s, zp];
}

/** DequantizeLinear's tensors: weight [K, N] (int4 signed when symmetric), scale and zero point [blocks, N]. */
function addDqTensors(graph: Graph, key: string, bq: BlockQuantized, bits: 4 | 8, symmetric: boolean, names: NameAllocator): string[] {
  const offset = symmetric ? 1 << (bits - 1) : 0;
  const w = names.fresh(`${key}_Q${bits}`);
  const s = names.fresh(`${key}_scale`);
  const values = symmetric ? Int8Array.from(bq.q, (v) => v - offset) : bq.q;
  const type = bits === 4 ? (symmetric ? DataType.INT4 : DataType.UINT4) : symmetric ? DataType.INT8 : DataType.UINT8;
  addInitializer(graph, w, type, [bq.K, bq.N], bits === 4 ? packNibbles(values) : values);
  const byBlock = (perColumn: ArrayLike<number>) => Array.from({ length: bq.blocks * bq.N }, (_, i) => perColumn[(i % bq.N) * bq.blocks + Math.floor(i / bq.N)]!);
  addFloatInitializer(graph, s, [bq.blocks, bq.N], byBlock(bq.scales));
  if (symmetric) return [w, s];
  const zp = names.fresh(`${key}_zero_point`);
  const zps = Uint8Array.from(byBlock(bq.zeroPoints));
  addInitializer(graph, zp, type, [bq.blocks, bq.N], bits === 4 ? packNibbles(zps) : zps);
  return [w, s, zp];
}

/** The warning for a run that changed nothing: which ops the model has instead of MatMul. */
function nothingQuantized(model: Model, bits: number, matmuls: number): string {
  if (matmuls > 0) return `no node was quantized: every MatMul was excluded or left in float (see above); the model is written unchanged`;
  const ops = new Map<string, number>();
  for (const g of model.graphs()) for (const n of g.nodes) if (['Conv', 'ConvTranspose', 'Gemm'].includes(n.opType)) ops.set(n.opType, (ops.get(n.opType) ?? 0) + 1);
  const has = [...ops].map(([op, count]) => `${count} ${op}`).join(', ');
  return `no node was quantized: ${bits}-bit weight-only quantization rewrites MatMul nodes with a constant 2-D float weight, and this model has no MatMul${has ? ` (it has ${has})` : ''}; the model is written unchanged`;
}
