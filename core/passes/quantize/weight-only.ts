import { availableParallelism } from 'node:os';
import { WhittleError } from '../../../api/errors.ts';
import { DataType } from '../../../native-models/ir/dtypes.ts';
import type { Graph, Model, Node } from '../../../native-models/ir/model.ts';
import type { TensorSource } from '../../../native-models/ir/tensor.ts';
import { WorkerPool } from '../../jobs/worker-pool.ts';
import { createPassContext, tensorBytes, type Pass, type PassContext, type PassReport } from '../pass.ts';
import { checkFiniteTensor, type ConstantWeight, float32Pieces, floatWeightOf, gatherTable, keepsOrder, materialise } from './constant-weight.ts';
import { addInitializer, adoptInitializer, intAttr, isExcluded, makeNode, NameAllocator, nodeCandidates, removeUnread, replaceNode } from './graph-edit.ts';
import { blockQuantizer, blockRowsPerPiece as kernelRowsPerPiece, quantizeBlockRows } from '../../jobs/quantize-kernels.mjs';
import { packNibbles } from './math.ts';
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
  /**
   * Also embedding tables: a Gather (axis 0) of a constant 2-D float table [V, D] becomes
   * com.microsoft.GatherBlockQuantized (blocks along D, MatMulNBits' packing; `matmulnbits` format only).
   */
  includeGather?: boolean;
  /** MatMulNBits accuracy_level (onnxruntime: 4 = int8 activations on CPU); unset by default. */
  accuracyLevel?: number;
  /**
   * Replaces round-to-nearest for a weight (GPTQ, gptq-pass.ts): what quantizeBlocks would return
   * for it in `layout`, or null to use RTN. Everything else (planning, graph edits) is this pass's.
   */
  quantizer?: BlockQuantizer;
}

export type BlockQuantizer = (node: Node, K: number, N: number, layout: 'kn' | 'packed') => Promise<{ blocks: number; data: Uint8Array; scales: Float32Array; zeroPoints: Uint8Array } | null>;

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

/** Bytes of the buffer weights are read through (grown for weights wider than it): pieces of whole block-rows fit. */
const PIECE_BYTES = 1 << 20;

type Pieces = () => Iterable<{ values: Float32Array; offset: number }>;

/**
 * The block quantizer behind quantizeBlockwise and the pass. `pieces` yields the [K, N] weight in
 * row-major order in pieces of whole block-rows (blockSize rows; the last may be short), quantized
 * along rows by quantize-kernels.mjs (every read sequential; the worker pool runs the same kernel) and
 * written either as q [K, N] ('kn', for the DQ form) or straight into MatMulNBits' packed B
 * ('packed': no [K, N] intermediate at all). `finite` false: a NaN or ±Infinity stopped it (the
 * outputs are then incomplete).
 */
export function quantizeBlocks(pieces: Pieces, K: number, N: number, bits: 4 | 8, blockSize: number, symmetric: boolean, layout: 'kn' | 'packed'): { blocks: number; data: Uint8Array; scales: Float32Array; zeroPoints: Uint8Array; finite: boolean } {
  const s = blockQuantizer(K, N, bits, blockSize, symmetric, layout);
  let finite = true;
  for (const { values, offset } of pieces()) {
    finite = quantizeBlockRows(s, values, offset / N);
    if (!finite) break;
  }
  return { blocks: s.blocks, data: s.data, scales: s.scales, zeroPoints: s.zeroPoints, finite };
}

/** Rows per piece when a weight must be copied: whole blocks, about 512 KiB. */
export function blockRowsPerPiece(N: number, blockSize: number): number {
  return kernelRowsPerPiece(N, blockSize);
}

/** MatMulNBits' zero points: per column ceil(blocks·bits/8) bytes, two 4-bit values per byte, low first. */
export function packZeroPoints(bq: Pick<BlockQuantized, 'N' | 'blocks' | 'zeroPoints'>, bits: 4 | 8): Uint8Array {
  if (bits === 8) return bq.zeroPoints.slice();
  const perColumn = Math.ceil(bq.blocks / 2);
  const out = new Uint8Array(bq.N * perColumn);
  const zps = bq.zeroPoints;
  // packNibbles per column, without an array per column
  for (let n = 0; n < bq.N; n++) {
    const from = n * bq.blocks;
    const to = n * perColumn;
    for (let i = 0; i < bq.blocks; i++) out[to + (i >> 1)]! |= (zps[from + i]! & 0xf) << ((i & 1) * 4);
  }
  return out;
}

interface Plan { graph: Graph; node: Node; weight: ConstantWeight }

/** `checkFinite` false: the quantizer checks every value as it reads it (quantizeAll), so no separate pass over the weight. */
function planNode(graph: Graph, node: Node, producers: Map<string, Node>, file: string | null, scratch: Float32Array, checkFinite: boolean): Plan | string {
  const w = floatWeightOf(graph, node, producers);
  if (typeof w === 'string') return w;
  if (w.dims.length !== 2) return `its weight has shape [${w.dims}] (only 2-D [K, N] weights are quantized)`;
  if (checkFinite) checkFiniteTensor(w.source, scratch, node, w.sourceName, file);
  return { graph, node, weight: w };
}

type Rtn = { blocks: number; data: Uint8Array; scales: Float32Array; zeroPoints: Uint8Array; finite: boolean };

/** Weights still in their files go to worker threads when they add up to this much (a thread costs about 30 ms to start). */
const PARALLEL_MIN_BYTES = 16 << 20;

/**
 * Round-to-nearest results for every plan, computed before the graph changes: a NaN or ±Infinity
 * (which the kernel notices as it reads) fails, named by checkFiniteTensor, before anything is
 * edited — and without a pass over the weights of its own. Several big weights still in a file
 * (external data, or a lazily read model) are quantized on worker threads, which read the file
 * themselves (SPEC §2); the rest here. The results do not depend on which thread made them.
 */
async function quantizeAll(plans: Plan[], o: { bits: 4 | 8; blockSize: number; symmetric: boolean; layout: 'kn' | 'packed'; file: string | null; ctx: PassContext; scratchFor: (elements: number) => Float32Array }): Promise<Map<Plan, Rtn>> {
  const { bits, blockSize, symmetric, layout, ctx } = o;
  // one result per weight and graph (a weight shared by several MatMuls is quantized once)
  const unique = new Map<Graph, Map<string, Plan>>();
  const first = new Map<Plan, Plan>();
  for (const plan of plans) {
    const byKey = unique.get(plan.graph) ?? unique.set(plan.graph, new Map()).get(plan.graph)!;
    const key = plan.node.inputs[1]!;
    if (!byKey.has(key)) byKey.set(key, plan);
    first.set(plan, byKey.get(key)!);
  }
  const todo = [...new Set(first.values())];
  const inFile = (p: Plan) => keepsOrder(p.weight) && p.weight.source.dataType === DataType.FLOAT && p.weight.source.source.kind === 'external';
  const files = todo.filter(inFile);
  const parallel = files.reduce((n, p) => n + p.weight.source.byteLength, 0) >= PARALLEL_MIN_BYTES ? files : [];
  // This thread is one of the threads: threads − 1 workers, each handed its whole share in one task
  // (a worker must not wait, idle, for this thread — busy quantizing — to hand it the next weight).
  // Shares balance bytes; this thread's starts with every weight not in a file.
  const threads = Math.min(availableParallelism(), parallel.length);
  const share = new Map<Plan, number>();
  const load = new Array<number>(Math.max(threads, 1)).fill(0);
  for (const p of todo) if (threads < 2 || !parallel.includes(p)) load[0]! += p.weight.source.byteLength;
  if (threads >= 2) {
    for (const p of parallel) {
      const least = load.indexOf(Math.min(...load));
      share.set(p, least);
      load[least]! += p.weight.source.byteLength;
    }
  }
  const pool = threads >= 2 ? new WorkerPool({ size: threads - 1 }) : null;
  const results = new Map<Plan, Rtn>();
  let done = 0;
  const finished = () => ctx.progress('quantize', ++done, todo.length);
  try {
    const running = Array.from({ length: pool ? threads - 1 : 0 }, async (_, w) => {
      const mine = parallel.filter((p) => share.get(p) === w + 1);
      const weights = mine.map((p) => {
        const source = p.weight.source.source as Extract<TensorSource, { kind: 'external' }>;
        const [K, N] = p.weight.dims as [number, number];
        return { path: source.path, offset: source.offset, K, N, bits, blockSize, symmetric, layout };
      });
      const r = await pool!.run('quantizeBlocks', { weights }, { signal: ctx.signal });
      mine.forEach((p, i) => { results.set(p, r[i]!); finished(); });
    });
    for (const p of todo) {
      if ((share.get(p) ?? 0) !== 0) continue;
      ctx.checkpoint();
      results.set(p, quantizeHere(p, o));
      finished();
    }
    await Promise.all(running);
  } finally {
    await pool?.close();
  }
  // in plan order, so the first bad weight is the one named, whichever thread met it
  for (const p of todo) {
    if (results.get(p)!.finite) continue;
    checkFiniteTensor(p.weight.source, o.scratchFor(PIECE_BYTES / 4), p.node, p.weight.sourceName, o.file); // throws
    throw new Error(`unreachable: ${p.weight.sourceName} has a NaN or Infinity that checkFiniteTensor did not find`);
  }
  return new Map(plans.map((p) => [p, results.get(first.get(p)!)!]));
}

/** One weight's RTN result on this thread, read in pieces of whole block-rows (never copied whole when it can be read in place). */
function quantizeHere(p: Plan, o: { bits: 4 | 8; blockSize: number; symmetric: boolean; layout: 'kn' | 'packed'; scratchFor: (elements: number) => Float32Array }): Rtn {
  const [K, N] = p.weight.dims as [number, number];
  let pieces: Pieces;
  if (keepsOrder(p.weight) && p.weight.source.dataType === DataType.FLOAT) {
    const rows = blockRowsPerPiece(N, o.blockSize);
    pieces = () => float32Pieces(p.weight.source, o.scratchFor(rows * N), rows * N);
  } else {
    const all = [{ values: materialise(p.graph, p.weight), offset: 0 }];
    pieces = () => all;
  }
  return quantizeBlocks(pieces, K, N, o.bits, o.blockSize, o.symmetric, o.layout);
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
      const plan = planNode(g, n, producersOf(g), model.path, scratch, options.quantizer !== undefined);
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
    const gathers = options.includeGather ? planGathers(model, { blockSize, format, exclude: options.exclude, warn, excluded }) : [];
    if (plans.length === 0 && gathers.length === 0) warn(nothingQuantized(model, bits, candidates.length));
    const layout = format === 'dq' ? 'kn' : 'packed';
    // round to nearest: every weight quantized (and checked) before the model changes
    const rtn = options.quantizer ? new Map<Plan, Rtn>() : await quantizeAll(plans, { bits, blockSize, symmetric, layout, file: model.path, ctx, scratchFor });
    // the tables too, before anything changes (a NaN in one fails here, naming it)
    const gatherQuantized = new Map(gathers.map((gp) => [gp, quantizeTable(gp, { bits, blockSize, symmetric, file: model.path, scratchFor })]));
    if (plans.length > 0 || gathers.length > 0) {
      if (format === 'dq') requireOpset(model, 21, `${bits}-bit blocked DequantizeLinear`);
      else ensureDomain(model, 'com.microsoft', 1);
      ensureIrVersion(model, IR_INITIALIZERS_NOT_INPUTS);
    }

    const names = new NameAllocator(model);
    const made = new Map<string, string[]>();
    const removable = { nodes: new Set<Node>(), names: new Set<string>() };
    let padded = 0;
    for (const [i, plan] of plans.entries()) {
      const { graph, node, weight } = plan;
      ctx.checkpoint();
      if (options.quantizer) ctx.progress('quantize', i, plans.length);
      const [K, N] = weight.dims as [number, number];
      if (K % blockSize !== 0) padded++;
      const key = node.inputs[1]!;
      let tensors = made.get(key);
      if (!tensors || !graph.initializers.has(tensors[0]!)) {
        const r = rtn.get(plan) ?? (await options.quantizer?.(node, K, N, layout)) ?? quantizeHere(plan, { bits, blockSize, symmetric, layout, scratchFor });
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
    for (const gp of gathers) {
      ctx.checkpoint();
      const { graph, node, table } = gp;
      const [V, D] = table.dims as [number, number];
      const r = gatherQuantized.get(gp)!;
      const key = node.inputs[0]!;
      const data = names.fresh(`${key}_Q${bits}`);
      const scales = names.fresh(`${key}_scales`);
      adoptInitializer(graph, data, DataType.UINT8, [V, (D * bits) / 8], r.data);
      adoptInitializer(graph, scales, DataType.FLOAT, [V, r.blocks], r.scales);
      const inputs = [data, node.inputs[1]!, scales];
      if (!symmetric) {
        const zp = names.fresh(`${key}_zero_points`);
        const zps = packZeroPoints({ N: V, blocks: r.blocks, zeroPoints: r.zeroPoints }, bits);
        addInitializer(graph, zp, DataType.UINT8, [V, zps.length / V], zps);
        inputs.push(zp);
      }
      const attrs = [intAttr('gather_axis', 0), intAttr('quantize_axis', 1), intAttr('block_size', blockSize), intAttr('bits', bits)];
      replaceNode(graph, node, [makeNode('GatherBlockQuantized', inputs, [...node.outputs], names.fresh(`${node.name || node.outputs[0]!}_GatherBlockQuantized`), 'com.microsoft', attrs)]);
      for (const n of table.chain) removable.nodes.add(n);
      removable.names.add(table.sourceName);
      removable.names.add(key);
    }
    ctx.progress('quantize', plans.length, plans.length);
    if (padded && format === 'matmulnbits') warn(`${padded} weight(s) have K not a multiple of ${blockSize}: their last block is padded with zero-point values (dequantized 0)`);
    removeUnread(model, removable);
    return {
      pass: this.name, nodesChanged: plans.length + gathers.length, bytesBefore, bytesAfter: tensorBytes(model), excluded, warnings,
      details: { bits, blockSize, symmetric, format, quantized: plans.map((p) => p.node.label), ...(options.includeGather ? { embeddings: gathers.map((p) => p.node.label) } : {}) },
    };
  },
};

interface GatherPlan { graph: Graph; node: Node; table: ConstantWeight }

/** A table [V, D] is the weight [K = D, N = V] of a MatMul: the same blocks, packing and zero points. */
function quantizeTable(gp: GatherPlan, o: { bits: 4 | 8; blockSize: number; symmetric: boolean; file: string | null; scratchFor: (elements: number) => Float32Array }): Rtn {
  const [V, D] = gp.table.dims as [number, number];
  const e = materialise(gp.graph, gp.table);
  const transposed = new Float32Array(V * D);
  for (let v = 0; v < V; v++) for (let d = 0; d < D; d++) transposed[d * V + v] = e[v * D + d]!;
  const r = quantizeBlocks(() => [{ values: transposed, offset: 0 }], D, V, o.bits, o.blockSize, o.symmetric, 'packed');
  if (!r.finite) checkFiniteTensor(gp.table.source, o.scratchFor(PIECE_BYTES / 4), gp.node, gp.table.sourceName, o.file); // throws
  return r;
}

/**
 * The Gathers whose table can be stored as GatherBlockQuantized: axis 0 of a constant 2-D float
 * table whose row length is a whole number of blocks, read by nothing else (a table tied to an
 * output projection would otherwise be stored twice). The others are named in a warning.
 */
function planGathers(model: Model, o: { blockSize: number; format: string; exclude: string[] | undefined; warn: (m: string) => void; excluded: string[] }): GatherPlan[] {
  const plans: GatherPlan[] = [];
  for (const g of model.graphs()) {
    const producers = g.producers();
    const consumers = g.consumers();
    for (const n of g.nodes) {
      const table = gatherTable(g, n, producers);
      if (!table) continue;
      const skip = (why: string) => { o.excluded.push(n.label); o.warn(`${n.label} (Gather) left in float: ${why}`); };
      if (isExcluded(n, o.exclude)) { o.excluded.push(n.label); continue; }
      if (o.format === 'dq') { skip('embedding tables are quantized in the matmulnbits format (GatherBlockQuantized) only'); continue; }
      if (table.dims.length !== 2 || n.attrInt('axis', 0) !== 0) { skip(`its table has shape [${table.dims}] gathered along axis ${n.attrInt('axis', 0)} (only 2-D tables along axis 0 are)`); continue; }
      if (table.dims[1]! % o.blockSize !== 0) { skip(`its rows of ${table.dims[1]} are not a whole number of ${o.blockSize}-value blocks (GatherBlockQuantized cannot pad them)`); continue; }
      const others = new Set([...new Set([table.sourceName, n.inputs[0]!])].flatMap((name) => (consumers.get(name) ?? []).filter((c) => c !== n && !table.chain.includes(c))));
      if (others.size > 0) { skip(`its table is also read by ${[...others].map((c) => `${c.label} (${c.opType})`).join(', ')} (a tied embedding): quantizing it for the Gather alone would store it twice`); continue; }
      plans.push({ graph: g, node: n, table });
    }
  }
  return plans;
}

/** MatMulNBits' tensors from quantizeBlocks' 'packed' output (`data` is B and `scales` the scales, both taken over without a copy). */
function addNBitsTensors(graph: Graph, key: string, bq: { N: number; blocks: number; data: Uint8Array; scales: Float32Array; zeroPoints: Uint8Array }, bits: 4 | 8, blockSize: number, symmetric: boolean, names: NameAllocator): string[] {
  const b = names.fresh(`${key}_Q${bits}`);
  const s = names.fresh(`${key}_scales`);
  adoptInitializer(graph, b, DataType.UINT8, [bq.N, bq.blocks, (blockSize * bits) / 8], bq.data);
  adoptInitializer(graph, s, DataType.FLOAT, [bq.N * bq.blocks], bq.scales);
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
  const type = bits === 4 ? (symmetric ? DataType.INT4 : DataType.UINT4) : symmetric ? DataType.INT8 : DataType.UINT8;
  // the stored values (signed ones less the storage offset, as two's complement), packed two per
  // byte for 4 bits, low nibble first: one pass, one new array, taken over by the graph
  const q = bq.q;
  let data: Uint8Array;
  if (bits === 4) {
    data = new Uint8Array(Math.ceil(q.length / 2));
    for (let i = 0; i + 1 < q.length; i += 2) data[i >> 1] = ((q[i]! - offset) & 0xf) | (((q[i + 1]! - offset) & 0xf) << 4);
    if (q.length % 2) data[q.length >> 1] = (q[q.length - 1]! - offset) & 0xf;
  } else if (symmetric) {
    data = new Uint8Array(q.length);
    for (let i = 0; i < q.length; i++) data[i] = (q[i]! - offset) & 0xff;
  } else data = q;
  adoptInitializer(graph, w, type, [bq.K, bq.N], data);
  // [N, blocks] → [blocks, N]
  const byBlock = <A extends Float32Array | Uint8Array>(perColumn: A, out: A): A => {
    for (let b = 0; b < bq.blocks; b++) for (let n = 0; n < bq.N; n++) out[b * bq.N + n] = perColumn[n * bq.blocks + b]!;
    return out;
  };
  adoptInitializer(graph, s, DataType.FLOAT, [bq.blocks, bq.N], byBlock(bq.scales, new Float32Array(bq.blocks * bq.N)));
  if (symmetric) return [w, s];
  const zp = names.fresh(`${key}_zero_point`);
  const zps = byBlock(bq.zeroPoints, new Uint8Array(bq.blocks * bq.N));
  adoptInitializer(graph, zp, type, [bq.blocks, bq.N], bits === 4 ? packNibbles(zps) : zps);
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
