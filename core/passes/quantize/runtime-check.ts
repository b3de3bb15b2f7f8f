import { linkSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { WhittleError } from '../../../api/errors.ts';
import { readOnnxFile, writeOnnxReferencingWeights } from '../../../native-models/formats/onnx/index.ts';
import type { Model, Node } from '../../../native-models/ir/model.ts';
import { createSession } from '../../../native-models/runtimes/onnxruntime.ts';
import { int8Saturation } from '../../../native-models/runtimes/cpu-int8.ts';
import { DataType } from '../../../native-models/ir/dtypes.ts';

/**
 * What onnxruntime's CPU EP really runs from a quantized file: the graph it builds after its
 * optimizations (the QDQ fusions included), read back from the file it writes. A QDQ graph is only a
 * promise: where a Q/DQ pair surrounds an op with no fused kernel, or a fusion's conditions are not
 * met, the op runs in float and pays a dequantize and a requantize, and the "int8" model can be slower
 * than fp32. The quantize report says which ops those are, so a researcher does not find out from a
 * latency figure.
 */
export interface RuntimeFusion {
  /** Integer kernels by op type in the optimized graph (QLinearConv: 26, QGemm: 1, MatMulNBits: 12…). */
  integerKernels: Record<string, number>;
  /** Float ops between a DequantizeLinear and a QuantizeLinear: each pays a round trip through float. */
  floatBetweenQdq: { op: string; node: string }[];
  seconds: number;
}

const INTEGER_KERNELS = new Set(['QGemm', 'MatMulIntegerToFloat', 'DynamicQuantizeMatMul', 'MatMulInteger', 'ConvInteger', 'MatMulNBits', 'GatherBlockQuantized', 'QAttention', 'DynamicQuantizeLSTM']);

const isInteger = (op: string) => op.startsWith('QLinear') || INTEGER_KERNELS.has(op);

/**
 * Where the check's small copy fits neither a temporary folder with hard links to the file nor the
 * file's own folder (another file system and a read-only folder), files up to this size are loaded
 * whole instead (a parse and a copy of every weight); bigger ones go unchecked.
 */
export const RUNTIME_CHECK_LIMIT_BYTES = 256 * 2 ** 20;

/** Whether a model holds quantized ops (Q/DQ pairs, integer kernels): the ones the check is for. */
export function hasQuantizedOps(model: Model): boolean {
  return model.graphs().some((g) => g.nodes.some((n) => n.opType === 'QuantizeLinear' || n.opType === 'DequantizeLinear' || n.opType === 'DynamicQuantizeLinear' || isInteger(n.opType)));
}

/** Ops whose every input is data; elsewhere only input 0 is (a Reshape's shape, a Slice's starts are not). */
const ALL_INPUTS_DATA = new Set(['Add', 'Sub', 'Mul', 'Div', 'Concat', 'Where', 'Max', 'Min', 'Sum', 'Mean']);

/**
 * The integer kernels and the float ops between Q/DQ pairs of an optimized graph. A float op is
 * between them when data reaches it from a DequantizeLinear and goes on to a QuantizeLinear through
 * float ops only (a float MaxPool and the Conv after it both count); shape arithmetic that only feeds
 * a Reshape's shape or a Slice's bounds does not.
 */
export function runtimeFusionOf(optimized: Model): Omit<RuntimeFusion, 'seconds'> {
  const g = optimized.graph;
  const order = g.topologicalOrder();
  const producers = g.producers();
  const consumers = g.consumers();
  const integerKernels: Record<string, number> = {};
  const isFloatOp = (n: Node) => n.opType !== 'QuantizeLinear' && n.opType !== 'DequantizeLinear' && !isInteger(n.opType);
  const dataSlot = (n: Node, slot: number) => slot === 0 || ALL_INPUTS_DATA.has(n.opType);
  const afterDq = new Set<Node>();
  for (const n of order) {
    if (isInteger(n.opType)) integerKernels[n.opType] = (integerKernels[n.opType] ?? 0) + 1;
    if (!isFloatOp(n)) continue;
    const fed = n.inputs.some((i, slot) => {
      const p = i && dataSlot(n, slot) ? producers.get(i) : undefined;
      return p !== undefined && (p.opType === 'DequantizeLinear' || afterDq.has(p));
    });
    if (fed) afterDq.add(n);
  }
  const beforeQ = new Set<Node>();
  for (const n of [...order].reverse()) {
    if (!isFloatOp(n)) continue;
    const feeds = n.outputs.some((o) => o && (consumers.get(o) ?? []).some((c) => c.opType === 'QuantizeLinear' || (beforeQ.has(c) && c.inputs.some((i, slot) => i === o && dataSlot(c, slot)))));
    if (feeds) beforeQ.add(n);
  }
  const floatBetweenQdq = order.filter((n) => afterDq.has(n) && beforeQ.has(n)).map((n) => ({ op: n.opType, node: n.label }));
  return { integerKernels, floatBetweenQdq };
}

/**
 * Lets onnxruntime optimize `path` (`bytes` with its external data) for its CPU EP and reports what
 * it made of the quantized ops; null when it could not be asked (see RUNTIME_CHECK_LIMIT_BYTES).
 */
export async function checkRuntimeFusion(path: string, bytes: number): Promise<RuntimeFusion | null> {
  const t0 = performance.now();
  const optimized = (await optimizeByReference(path)) ?? (bytes <= RUNTIME_CHECK_LIMIT_BYTES ? await optimizeCopy(path) : null);
  if (!optimized) return null;
  return { ...runtimeFusionOf(optimized), seconds: (performance.now() - t0) / 1000 };
}

/** Errors a folder gives when it takes no new file (or a file no new link): the check then tries the next way. */
const UNWRITABLE = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOSPC', 'EDQUOT', 'EXDEV', 'EMLINK']);
const unwritable = (err: unknown) => UNWRITABLE.has((err as NodeJS.ErrnoException).code ?? '');

/**
 * The optimized graph from a copy of the file that references its weights where they are (a few
 * KiB): onnxruntime maps the weights instead of parsing them out of the protobuf, keeps the unchanged
 * ones as references in the file it writes, and packs none (the session never runs). On a
 * 67 M-parameter dynamic int8 MLP the check took 1.0 s and 190 MiB that this way's 0.12 s replaces.
 * The copy goes to a temporary folder holding hard links to the model's files (onnxruntime takes
 * external data only from the model's own folder), else, across file systems, beside the file for
 * the moment it takes. null when neither folder takes it.
 */
async function optimizeByReference(path: string): Promise<Model | null> {
  const file = resolve(path);
  const model = readOnnxFile(file, { lazyTensors: true });
  const files = new Set<string>();
  for (const { tensor } of model.weights()) if (tensor.source.kind === 'external') files.add(tensor.source.path);
  const tmp = mkdtempSync(join(tmpdir(), 'whittle-check-'));
  try {
    let dir = tmp;
    try {
      for (const f of files) {
        const link = join(tmp, relative(dirname(file), f));
        mkdirSync(dirname(link), { recursive: true });
        linkSync(f, link);
      }
    } catch (err) {
      if (!unwritable(err)) throw err;
      dir = dirname(file);
    }
    const stem = join(dir, `.${basename(file)}.whittle-check-${process.pid}-${Date.now()}`);
    const skeleton = `${stem}.onnx`;
    const optimizedPath = `${stem}-optimized.onnx`;
    try {
      try {
        writeOnnxReferencingWeights(model, skeleton, dirname(file));
      } catch (err) {
        if (unwritable(err)) return null;
        throw err;
      }
      try {
        // 'extended' holds the QDQ fusions; 'all' would add the NCHWc layout, which the written file warns about
        const { session } = await createSession(skeleton, { ep: 'cpu', graphOptimizationLevel: 'extended', optimizedModelFilePath: optimizedPath, disablePrepacking: true });
        await session.release();
      } catch (err) {
        // name the user's file, not the copy
        if (err instanceof WhittleError) throw new WhittleError(err.code, err.message.split(skeleton).join(file), { file, cause: err });
        throw err;
      }
      return readOnnxFile(optimizedPath, { lazyTensors: true });
    } finally {
      rmSync(skeleton, { force: true });
      rmSync(optimizedPath, { force: true });
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** The optimized graph from the file itself, written to a temporary folder. */
async function optimizeCopy(path: string): Promise<Model> {
  const dir = mkdtempSync(join(tmpdir(), 'whittle-fusion-'));
  try {
    const optimizedPath = join(dir, 'optimized.onnx');
    const { session } = await createSession(path, { ep: 'cpu', graphOptimizationLevel: 'extended', optimizedModelFilePath: optimizedPath, disablePrepacking: true });
    await session.release();
    return readOnnxFile(optimizedPath);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The check as reports use it: the result and the warnings to pass on (the float ops between Q/DQ
 * pairs, or why the check could not be made). A file onnxruntime cannot load is a note, never a
 * failed step: the step's own work is done by then.
 */
export async function runtimeCheckWithWarnings(path: string, bytes: number): Promise<{ fusion: RuntimeFusion | null; warnings: string[] }> {
  try {
    const fusion = await checkRuntimeFusion(path, bytes);
    const warning = fusion && fusionWarning(fusion);
    const saturation = fusion && Object.keys(fusion.integerKernels).length > 0 ? saturationWarning(readOnnxFile(path, { lazyTensors: true })) : null;
    return { fusion, warnings: [warning, saturation].filter((w): w is string => w !== null) };
  } catch (err) {
    return { fusion: null, warnings: [`could not check what onnxruntime runs of ${path}: ${(err as Error).message}`] };
  }
}

/** One warning for the float ops between Q/DQ pairs (null when there are none). */
export function fusionWarning(f: Pick<RuntimeFusion, 'floatBetweenQdq'>): string | null {
  if (f.floatBetweenQdq.length === 0) return null;
  const byOp = new Map<string, string[]>();
  for (const { op, node } of f.floatBetweenQdq) byOp.set(op, [...(byOp.get(op) ?? []), node]);
  const list = [...byOp].map(([op, nodes]) => `${op} ×${nodes.length} (${nodes.slice(0, 3).join(', ')}${nodes.length > 3 ? ', …' : ''})`).join('; ');
  return `onnxruntime's CPU EP runs ${f.floatBetweenQdq.length} op(s) in float between DequantizeLinear and QuantizeLinear: ${list}; each pays a round trip through float`;
}

/** One line on what onnxruntime's CPU EP runs of a quantized file, for reports. */
export function describeRuntimeFusion(rt: Pick<RuntimeFusion, 'integerKernels' | 'floatBetweenQdq'>): string {
  const kernels = Object.entries(rt.integerKernels).sort((a, b) => b[1] - a[1]).map(([op, n]) => `${n} ${op}`).join(', ') || 'no integer kernel';
  const float = rt.floatBetweenQdq.length;
  return `onnxruntime CPU runs ${kernels}; ${float === 0 ? 'no float op between Q/DQ pairs' : `${float} float op(s) between Q/DQ pairs (see the warning)`}`;
}

/** Ops whose int8 weight (input index) onnxruntime's CPU kernels multiply with uint8 activations. */
const INT8_WEIGHT_INPUTS: Record<string, number> = { QLinearConv: 3, QLinearMatMul: 3, QGemm: 3, MatMulInteger: 1, ConvInteger: 1, DynamicQuantizeMatMul: 1, MatMulIntegerToFloat: 1 };
const FLOAT_COMPUTE = new Set(['Conv', 'ConvTranspose', 'MatMul', 'Gemm']);

/**
 * The largest |code| of the int8 weights a model's integer kernels read — stored for the QLinear ops and
 * MatMulInteger, or read by a Conv/MatMul/Gemm through DequantizeLinear (QDQ); null when none.
 */
export function widestInt8Weight(model: Model): number | null {
  const g = model.graph;
  const consumers = g.consumers();
  const weights = new Set<string>();
  for (const n of g.nodes) {
    const at = INT8_WEIGHT_INPUTS[n.opType];
    if (at !== undefined && n.inputs[at]) weights.add(n.inputs[at]!);
    if (n.opType === 'DequantizeLinear' && n.inputs[0] && n.outputs[0] && (consumers.get(n.outputs[0]) ?? []).some((c) => FLOAT_COMPUTE.has(c.opType) && c.inputs[1] === n.outputs[0])) weights.add(n.inputs[0]);
  }
  let widest: number | null = null;
  for (const name of weights) {
    const t = g.initializers.get(name);
    if (!t || t.dataType !== DataType.INT8) continue;
    const codes = t.typed() as Int8Array;
    let m = 0;
    for (let i = 0; i < codes.length; i++) { const a = Math.abs(codes[i]!); if (a > m) m = a; }
    widest = Math.max(widest ?? 0, m);
  }
  return widest;
}

/**
 * On a CPU whose u8×s8 kernels saturate (cpu-int8.ts), int8 weights beyond ±64: what the fused
 * model computes here is not what the model says. null when that cannot happen.
 */
export function saturationWarning(model: Model): string | null {
  const cpu = int8Saturation();
  if (!cpu.saturates) return null;
  const widest = widestInt8Weight(model);
  if (widest === null || widest <= 64) return null;
  return `${model.path ?? 'this model'}: its int8 weights reach ±${widest}, and this CPU (${cpu.cpu}: ${cpu.detail}) runs onnxruntime's u8×s8 kernels with a saturating int16 sum of two products, so the fused model's results here are not the model's (quantize with --reduce-range on for CPUs like this one; whittle eval --exact-int8 measures the model's own arithmetic)`;
}
