import { WhittleError } from '../../api/errors.ts';
import { CALIBRATION_METHODS, QUANTIZE_METHODS, QuantizeStep } from '../../api/recipe.ts';
import { quantizeModel, type QuantizeReport } from '../../core/passes/quantize/quantize-model.ts';
import { describeRuntimeFusion } from '../../core/passes/quantize/runtime-check.ts';
import { isTfjsQuantizeMethod, quantizeTfjsModel, TFJS_QUANTIZE_METHODS } from '../../core/passes/tfjs/run-on-file.ts';
import { sniffFormat } from '../../native-models/formats/index.ts';
import { EP_CHOICES, type EpChoice } from '../../native-models/runtimes/onnxruntime.ts';
import { formatBytes, formatCount, numberOption, parseCommand, requireOne, type CliIo } from '../io.ts';
import { ProgressBar } from '../progress.ts';
import { recordCommand } from '../record.ts';

export const summary = 'quantize a model: dynamic int8, static int8 QDQ, fp16, int4/int8 weight-only; TF.js uint8/uint16/fp16';
export const usage = `
whittle quantize MODEL -o OUT --method ${QUANTIZE_METHODS.join('|')}
        [--calib DATA] [--preprocess PRESET] [--calibration ${CALIBRATION_METHODS.join('|')}] [--samples N]
        [--percentile P] [--moving-average] [--symmetric-ranges] [--bins N]
        [--per-channel] [--activation-type uint8|int8] [--weight-type int8|uint8] [--reduce-range auto|on|off]
        [--block-size 16..256] [--symmetric|--asymmetric] [--format matmulnbits|dq] [--algorithm rtn|gptq]
        [--act-order] [--percdamp F] [--bias-correction]
        [--exclude NODE[,NODE...]] [--keep-io-types] [--include-conv] [--include-gather] [--ep cpu|auto|...] [--seed N]
        [--json] [--no-record]

dynamic      MatMul/Gemm (and Conv with --include-conv) to DynamicQuantizeLinear + MatMulInteger
static       int8 QDQ that onnxruntime fuses into QLinearConv/QLinearMatMul; needs --calib DATA
             (first --samples N samples, default 256; calibrators: minmax, percentile, entropy, mse;
             minmax --moving-average: onnxruntime's moving average of batch ranges; percentile,
             entropy, mse: --symmetric-ranges (±t), --bins N (histogram, default 2048));
             --bias-correction: each Conv/Gemm's int32 bias gets back the output channel means
             quantization moved on the calibration data (one more pass over it per layer depth)
fp16         float16 weights and activations, fragile ops kept fp32 (--keep-io-types: fp32 in/out)
int4         com.microsoft.MatMulNBits 4-bit blocks (--block-size, default 32), or --format dq
int8-weight  the same with 8 bits; --include-gather: embedding tables (Gather) too, as GatherBlockQuantized
             --algorithm gptq: GPTQ (needs --calib DATA; first --samples N, default 128) chooses the
             values from each layer's input Hessian; same layout; --act-order, --percdamp (0.01);
             --ep webgpu also runs its math on the WebGPU compute device (auto: when there is one).
             With static: the int8 Conv/Gemm/MatMul weights keep their scales, GPTQ picks the integers.
--reduce-range  static, dynamic: int8 weights in 7 bits ([-64, 64], onnxruntime's reduce_range). On x86
             CPUs without VNNI onnxruntime's u8×s8 kernels saturate 8-bit weights; auto (the default)
             turns it on when this CPU is one of them, and the output says which it chose and why.
--exclude takes node names or op types; excluded nodes stay float.

TF.js models (MODEL is a model.json; OUT a model.json path or a folder; shards of --shard-bytes, default 4 MiB):
uint8, uint16  per-tensor affine weight quantization exactly as the TF.js converter's --quantize_uint8/16
fp16         float16 weights (--quantize_float16)
TF.js dequantizes at load: this saves download and storage, not inference time. --exclude takes weight,
layer or node names and layer classes / op types.`;

function splitList(v: string | undefined): string[] {
  return v ? v.split(',').map((s) => s.trim()).filter(Boolean) : [];
}

export function renderQuantize(r: QuantizeReport): string {
  const lines = [
    `wrote ${r.output}`,
    `  method      ${r.method}${r.calibration ? ` (calibration ${r.calibration.method} on ${formatCount(r.calibration.samples)} samples${r.calibration.samplesPerRun !== undefined ? `, ${formatCount(r.calibration.samplesPerRun)} per run to bound memory` : ''}, ${r.calibration.seconds.toFixed(1)} s)` : ''}`,
    `  size        ${formatBytes(r.bytesBefore)} → ${formatBytes(r.bytesAfter)} (${(r.bytesBefore / Math.max(1, r.bytesAfter)).toFixed(2)}× smaller)`,
    `  parameters  ${formatCount(r.parametersBefore)} → ${formatCount(r.parametersAfter)}`,
    `  nodes       ${formatCount(r.nodesChanged)} changed${r.excluded.length ? `, ${r.excluded.length} left float: ${r.excluded.slice(0, 8).join(', ')}${r.excluded.length > 8 ? ', …' : ''}` : ''}`,
    `  time        ${r.seconds.toFixed(2)} s, peak RSS ${formatBytes(r.peakRssBytes)}`,
  ];
  const g = r.gptq;
  if (g && g.meanErrorGptq !== null && g.meanErrorRtn !== null) {
    lines.splice(2, 0, `  gptq        layer output error ‖WX − ŴX‖²/‖WX‖² ${g.meanErrorGptq.toExponential(2)}, rounding to nearest ${g.meanErrorRtn.toExponential(2)} (mean of ${g.layers} layers)`);
  }
  if (r.reduceRange) lines.push(`  weights     int8 in ${r.reduceRange.on ? '7 bits, [-64, 64] (reduce range' : '8 bits (no reduce range'}${r.reduceRange.auto ? ', auto' : ''}: ${r.reduceRange.reason})`);
  if (r.runtimeCheck) lines.push(`  runtime     ${describeRuntimeFusion(r.runtimeCheck)}`);
  const bc = r.biasCorrection;
  if (bc) {
    const worst = [...bc.layers].sort((a, b) => b.rmsShift / Math.max(1e-30, b.rmsMean) - a.rmsShift / Math.max(1e-30, a.rmsMean))[0];
    const share = worst ? `, largest ${worst.node}: ${((worst.rmsShift / Math.max(1e-30, worst.rmsMean)) * 100).toFixed(1)} % of its channel means` : '';
    lines.splice(2, 0, `  bias        corrected ${bc.layers.length} layer(s) in ${bc.levels} pass(es) over ${formatCount(bc.samples)} samples, ${bc.seconds.toFixed(1)} s${share}${bc.withoutBias.length ? `; ${bc.withoutBias.length} without an int32 bias left as they are` : ''}${bc.exactInt8 ? '; measured in the model\'s own arithmetic (this CPU\'s fused int8 kernels saturate 8-bit weights)' : ''}`);
  }
  return lines.join('\n') + '\n';
}

export async function run(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand('quantize', argv, {
    output: { type: 'string', short: 'o' },
    method: { type: 'string' },
    calib: { type: 'string' },
    preprocess: { type: 'string' },
    calibration: { type: 'string' },
    samples: { type: 'string' },
    percentile: { type: 'string' },
    'moving-average': { type: 'boolean' },
    'symmetric-ranges': { type: 'boolean' },
    bins: { type: 'string' },
    'per-channel': { type: 'boolean' },
    'activation-type': { type: 'string' },
    'weight-type': { type: 'string' },
    'reduce-range': { type: 'string' },
    'block-size': { type: 'string' },
    symmetric: { type: 'boolean' },
    asymmetric: { type: 'boolean' },
    format: { type: 'string' },
    algorithm: { type: 'string' },
    'act-order': { type: 'boolean' },
    'bias-correction': { type: 'boolean' },
    'include-gather': { type: 'boolean' },
    percdamp: { type: 'string' },
    exclude: { type: 'string' },
    'keep-io-types': { type: 'boolean' },
    'include-conv': { type: 'boolean' },
    ep: { type: 'string', default: 'cpu' },
    seed: { type: 'string' },
    'shard-bytes': { type: 'string' },
  });
  const input = requireOne('quantize', positionals, 'MODEL');
  if (!values.output) throw new WhittleError('BAD_USAGE', 'whittle quantize: -o OUT is required');
  if (!values.method) throw new WhittleError('BAD_USAGE', `whittle quantize: --method is required (${QUANTIZE_METHODS.join(', ')})`);
  const tfjsMethods = Object.keys(TFJS_QUANTIZE_METHODS).join(', ');
  if (sniffFormat(input) === 'tfjs') {
    if (!isTfjsQuantizeMethod(values.method)) throw new WhittleError('BAD_USAGE', `whittle quantize: --method ${values.method} works on ONNX models; ${input} is a TF.js model, which takes ${tfjsMethods}`);
    const onnxOnly = ['calib', 'calibration', 'samples', 'percentile', 'moving-average', 'symmetric-ranges', 'bins', 'per-channel', 'activation-type', 'weight-type', 'reduce-range', 'block-size', 'symmetric', 'asymmetric', 'format', 'algorithm', 'act-order', 'percdamp', 'bias-correction', 'keep-io-types', 'include-conv', 'include-gather'].filter((k) => values[k as keyof typeof values] !== undefined);
    if (onnxOnly.length) throw new WhittleError('BAD_USAGE', `whittle quantize: ${onnxOnly.map((k) => `--${k}`).join(', ')} apply to ONNX models only, not to the TF.js model ${input}`);
    return runTfjs(input, values.output, values.method, argv, values, io);
  }
  if (values['shard-bytes'] !== undefined) throw new WhittleError('BAD_USAGE', 'whittle quantize: --shard-bytes applies to TF.js models only');
  if (values.method === 'uint8' || values.method === 'uint16') {
    throw new WhittleError('BAD_USAGE', `whittle quantize: --method ${values.method} is TF.js weight quantization (for a model.json); ${input} is an ONNX model, which takes dynamic, static, fp16, int4 or int8-weight`);
  }
  if (values.symmetric && values.asymmetric) throw new WhittleError('BAD_USAGE', 'whittle quantize: --symmetric and --asymmetric exclude each other');
  const ep = values.ep as EpChoice;
  if (!EP_CHOICES.includes(ep)) throw new WhittleError('BAD_USAGE', `whittle quantize: --ep must be one of ${EP_CHOICES.join(', ')}`);
  const reduceRange = values['reduce-range'];
  if (reduceRange !== undefined && !['auto', 'on', 'off'].includes(reduceRange)) throw new WhittleError('BAD_USAGE', `whittle quantize: --reduce-range must be auto, on or off, got ${reduceRange}`);
  const raw = {
    method: values.method,
    ...(values.calib ? { calib: { path: values.calib, ...(values.preprocess ? { preprocess: values.preprocess } : {}) } } : {}),
    ...(values.calibration ? { calibration: values.calibration } : {}),
    ...(values.samples ? { samples: numberOption('quantize', 'samples', values.samples, { min: 1, integer: true }) } : {}),
    ...(values.percentile ? { percentile: numberOption('quantize', 'percentile', values.percentile, { min: 50, max: 100 }) } : {}),
    ...(values['moving-average'] ? { movingAverage: true } : {}),
    ...(values['symmetric-ranges'] ? { symmetricRanges: true } : {}),
    ...(values.bins ? { bins: numberOption('quantize', 'bins', values.bins, { min: 128, max: 65536, integer: true }) } : {}),
    perChannel: Boolean(values['per-channel']),
    ...(values['activation-type'] ? { activationType: values['activation-type'] } : {}),
    ...(values['weight-type'] ? { weightType: values['weight-type'] } : {}),
    ...(reduceRange === 'on' || reduceRange === 'off' ? { reduceRange: reduceRange === 'on' } : {}),
    ...(values['block-size'] ? { blockSize: numberOption('quantize', 'block-size', values['block-size'], { integer: true }) } : {}),
    ...(values.symmetric ? { symmetric: true } : values.asymmetric ? { symmetric: false } : {}),
    ...(values.format ? { format: values.format } : {}),
    ...(values.algorithm ? { algorithm: values.algorithm } : {}),
    ...(values['act-order'] ? { actOrder: true } : {}),
    ...(values['bias-correction'] ? { biasCorrection: true } : {}),
    ...(values.percdamp ? { percdamp: numberOption('quantize', 'percdamp', values.percdamp, { min: 0, max: 1 }) } : {}),
    exclude: splitList(values.exclude),
    keepIoTypes: Boolean(values['keep-io-types']),
    includeConv: Boolean(values['include-conv']),
    includeGather: Boolean(values['include-gather']),
  };
  const parsed = QuantizeStep.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new WhittleError('BAD_USAGE', `whittle quantize: ${issue.path.join('.') || 'options'}: ${issue.message}`);
  }
  const step = parsed.data;
  const bar = new ProgressBar(io, 'quantize');
  const inputs = [{ role: 'model', path: input }];
  if (step.calib && !step.calib.path.startsWith('synthetic:')) inputs.push({ role: 'calib', path: step.calib.path });
  const report = await recordCommand({
    kind: 'quantize',
    argv: ['quantize', ...argv],
    inputs,
    record: !values['no-record'],
    environment: { ep, seed: Number(values.seed ?? 0) },
    work: async () => {
      const r = await quantizeModel({ input, output: values.output!, step, ep, seed: Number(values.seed ?? 0), progress: (phase, done, total) => bar.update(done, total, phase) });
      bar.done();
      return r;
    },
    artifacts: (r) => [r.output, ...(r.externalDataPath ? [r.externalDataPath] : [])],
  });
  for (const w of report.warnings) io.stderr(`whittle: warning: ${w}\n`);
  if (values.json) io.stdout(JSON.stringify(report) + '\n');
  else io.stdout(renderQuantize(report));
  return 0;
}

/** `whittle quantize model.json`: TF.js weight quantization, recorded like the ONNX runs. */
async function runTfjs(
  input: string, output: string, method: keyof typeof TFJS_QUANTIZE_METHODS, argv: string[],
  values: { json?: boolean; 'no-record'?: boolean; exclude?: string | undefined; seed?: string | undefined; 'shard-bytes'?: string | undefined }, io: CliIo,
): Promise<number> {
  const bar = new ProgressBar(io, 'quantize');
  const shardBytes = numberOption('quantize', 'shard-bytes', values['shard-bytes'], { min: 1, integer: true });
  const report = await recordCommand({
    kind: 'quantize',
    argv: ['quantize', ...argv],
    inputs: [{ role: 'model', path: input }],
    record: !values['no-record'],
    environment: { seed: Number(values.seed ?? 0) },
    work: async () => {
      const r = await quantizeTfjsModel({ input, output, method, exclude: splitList(values.exclude), shardBytes, progress: (phase, done, total) => bar.update(done, total, phase) });
      bar.done();
      return r;
    },
    artifacts: (r) => r.files,
  });
  for (const w of report.warnings) io.stderr(`whittle: warning: ${w}\n`);
  if (values.json) io.stdout(JSON.stringify(report) + '\n');
  else io.stdout(renderQuantize(report));
  return 0;
}
