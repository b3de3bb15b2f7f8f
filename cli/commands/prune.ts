import { readFileSync } from 'node:fs';
import { WhittleError } from '../../api/errors.ts';
import { PRUNE_METHODS, PruneStep, Recipe, sparsityPlanOf } from '../../api/recipe.ts';
import { absoluteRecipe } from '../../core/jobs/recipe-from-run.ts';
import type { ChannelPruneDetails } from '../../core/passes/prune/channel/channel-prune.ts';
import type { ReconstructedLayer } from '../../core/passes/prune/channel/reconstruct.ts';
import type { HeadPruneDetails } from '../../core/passes/prune/heads.ts';
import { DEFLATE_CHOICES, pruneModel, type DeflateChoice, type PruneReport } from '../../core/passes/prune/prune-model.ts';
import { pruneTfjsModel, TFJS_PRUNE_METHODS, type TfjsPruneReport } from '../../core/passes/tfjs/run-on-file.ts';
import { sniffFormat } from '../../native-models/formats/index.ts';
import { EP_CHOICES, type EpChoice } from '../../native-models/runtimes/onnxruntime.ts';
import { formatBytes, formatCount, numberOption, parseCommand, requireOne, type CliIo } from '../io.ts';
import { ProgressBar } from '../progress.ts';
import { recordCommand } from '../record.ts';

export const summary = 'prune a model: magnitude, N:M, structured channels, attention heads, Wanda, SparseGPT';
export const usage = `
whittle prune MODEL -o OUT --method ${PRUNE_METHODS.join('|')}
        [--sparsity 0..0.99] [--scope layer|global] [--pattern 2:4] [--calib DATA] [--preprocess PRESET]
        [--samples N] [--round-to 8] [--importance l1|l2|activation] [--comparison layer|row] [--sequential] [--bias-correction]
        [--exclude NODE[,NODE...]] [--plan FILE]
        [--protect-first-last] [--min-parameters N] [--ep cpu|auto|...] [--deflate auto|on|off] [--seed N]
        [--json] [--no-record]

magnitude   zero the smallest |w| per layer (--scope layer) or across layers (--scope global); --ep webgpu
            finds the thresholds by a radix select on the WebGPU compute device (auto: when there is one):
            the same weights as on the CPU
nm          N:M sparsity (--pattern, default 2:4) along each weight's input dimension
channel     remove whole channels (dependency groups through BN, residual Add, Concat, depthwise Conv,
            and a MatMul's hidden units into the next MatMul: a transformer's MLP);
            the model really gets smaller and faster. With --calib DATA the layers that read removed
            channels are refitted by least squares to reproduce their outputs (biases take the means);
            --importance activation (with --calib) ranks channels by the output energy they give
            those layers instead of by their weights' norm
heads       remove whole attention heads (Reshape/Transpose-split multi-head attention: their query,
            key and value columns and output-projection rows); --sparsity is the share of each block's
            heads removed (--scope global: the least important heads of all blocks together). Ranked by
            ‖Wv,h‖·‖Wo,h‖, or with --importance activation (needs --calib) by the energy each gives the
            output projection; with --calib the output projection is refitted by least squares to
            reproduce the unpruned block's output
wanda       |W|·‖X‖ per output row, with activations from --calib DATA
sparsegpt   Hessian-based pruning with weight updates, from --calib DATA; --ep webgpu also runs its
            factorization and updates on the WebGPU compute device (auto: when there is one)
--bias-correction  (wanda, sparsegpt; magnitude and nm with --calib) add the mean each output lost to
            its bias, measured on the calibration data: not part of the published methods, off by default
--plan FILE (magnitude, wanda, sparsegpt) each layer's own sparsity: the plan of 'whittle analyze --for
            prune --json' (or of its recorded run, 'experiments show RUN --json'), or a JSON object
            {"node name": sparsity}; layers it does not name take --sparsity
Unstructured sparsity saves disk after compression, not inference time: onnxruntime densifies it.
--deflate   measure the input's and output's sizes after deflate (what the zeros are worth in a zip):
            auto (default) for models up to 128 MiB a CPU core (deflate runs at ~10 MB/s a core), on, off

TF.js models (MODEL is a model.json; OUT a model.json path or a folder; shards of --shard-bytes, default
4 MiB) take magnitude and nm on the kernels of Dense, Conv and MatMul (N:M along the input dimension:
Dense [in, out], Conv2D [kh, kw, in, out]; depthwise kernels are skipped by nm). A quantized weight keeps
its quantization, the pruned codes set to the one that means exactly 0.`;

/** --plan FILE: a per-layer sparsity plan (api/recipe.ts sparsityPlanOf), or a BAD_INPUT naming the file. */
function readPlan(file: string): Record<string, number> {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new WhittleError('BAD_INPUT', `${file}: not a readable JSON file (${err instanceof Error ? err.message : String(err)})`);
  }
  const plan = sparsityPlanOf(doc);
  if (!plan) throw new WhittleError('BAD_INPUT', `${file}: no per-layer sparsity plan in it (expected the JSON of \`whittle analyze --for prune\`, of its run, or {"node name": sparsity in [0, 1)})`);
  return plan;
}

function splitList(v: string | undefined): string[] {
  return v ? v.split(',').map((s) => s.trim()).filter(Boolean) : [];
}

export function renderPrune(r: PruneReport): string {
  return [
    `wrote ${r.output}`,
    // structured methods remove weights: their "sparsity" (stored zeros) is not what they did
    r.method === 'channel' || r.method === 'heads' ? `  method      ${r.method} (structured: weights removed, not zeroed)` : `  method      ${r.method}, ${(r.sparsity * 100).toFixed(1)} % of parameters zero`,
    `  parameters  ${formatCount(r.parametersBefore)} → ${formatCount(r.parametersAfter)}`,
    r.deflatedBytesBefore === null || r.deflatedBytesAfter === null
      ? `  size        ${formatBytes(r.bytesBefore)} → ${formatBytes(r.bytesAfter)} on disk (deflated sizes not measured: ${r.deflateSkipped ?? 'skipped'})`
      : `  size        ${formatBytes(r.bytesBefore)} → ${formatBytes(r.bytesAfter)} on disk; ${formatBytes(r.deflatedBytesBefore)} → ${formatBytes(r.deflatedBytesAfter)} after deflate`,
    `  nodes       ${formatCount(r.nodesChanged)} changed${r.excluded.length ? `, ${r.excluded.length} left alone: ${r.excluded.slice(0, 8).join(', ')}${r.excluded.length > 8 ? ', …' : ''}` : ''}`,
    ...refitLine(r),
    ...headLines(r),
    ...computeLine(r),
    `  time        ${r.seconds.toFixed(2)} s${(r.deflateSeconds ?? 0) >= 0.1 ? ` (+ ${r.deflateSeconds!.toFixed(2)} s measuring the deflated sizes)` : ''}, peak RSS ${formatBytes(r.peakRssBytes)}`,
  ].join('\n') + '\n';
}

/** SparseGPT on the GPU: which compute device ran its math (the CPU says nothing). */
function computeLine(r: PruneReport): string[] {
  const compute = (r.details as { compute?: unknown } | undefined)?.compute;
  return typeof compute === 'string' && compute !== 'cpu' ? [`  compute     ${compute}`] : [];
}

/** Channel pruning with calibration data: the layers refitted and their mean output error, cut vs refitted. */
function refitLine(r: PruneReport): string[] {
  const rec = (r.details as Partial<ChannelPruneDetails> | undefined)?.reconstruction;
  if (!rec || rec.layers.length === 0) return [];
  const mean = (f: (l: ReconstructedLayer) => number) => rec.layers.reduce((a, l) => a + f(l), 0) / rec.layers.length;
  return [`  refit       ${rec.layers.length} layers on ${rec.samples} samples: output error ‖WX−ŴX‖²/‖WX‖² ${mean((l) => l.errorCut).toExponential(2)} cut → ${mean((l) => l.errorRefit).toExponential(2)} refitted (mean)`];
}

/** Head pruning: heads before and after, each block's removed heads and, refitted, its o_proj error. */
function headLines(r: PruneReport): string[] {
  if (r.method !== 'heads') return [];
  const d = r.details as unknown as HeadPruneDetails;
  const error = (b: HeadPruneDetails['blocks'][number]) => (b.errorCut === undefined ? '' : `, o_proj error ${b.errorCut.toFixed(3)} cut → ${b.errorRefit!.toFixed(3)} refitted`);
  return [
    `  heads       ${d.headsBefore} → ${d.headsAfter} (ranked by ${d.importance === 'activation' ? 'activation energy' : '‖Wv,h‖·‖Wo,h‖'}${d.scope === 'global' ? ' across blocks' : ''}${d.refit ? `; o_proj refitted on ${d.refit.samples} samples` : ''})`,
    ...d.blocks.map((b) => `              ${b.block}: removed ${b.removed.length ? b.removed.join(', ') : 'none'} of ${b.heads}${error(b)}`),
    ...d.skipped.map((s) => `              ${s.block}: kept whole (${s.reason})`),
  ];
}

export async function run(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand('prune', argv, {
    output: { type: 'string', short: 'o' },
    method: { type: 'string' },
    sparsity: { type: 'string' },
    scope: { type: 'string' },
    pattern: { type: 'string' },
    calib: { type: 'string' },
    preprocess: { type: 'string' },
    samples: { type: 'string' },
    'round-to': { type: 'string' },
    importance: { type: 'string' },
    comparison: { type: 'string' },
    sequential: { type: 'boolean' },
    'bias-correction': { type: 'boolean' },
    exclude: { type: 'string' },
    'protect-first-last': { type: 'boolean' },
    'min-parameters': { type: 'string' },
    plan: { type: 'string' },
    ep: { type: 'string', default: 'cpu' },
    seed: { type: 'string' },
    'shard-bytes': { type: 'string' },
    deflate: { type: 'string', default: 'auto' },
  });
  const input = requireOne('prune', positionals, 'MODEL');
  if (!values.output) throw new WhittleError('BAD_USAGE', 'whittle prune: -o OUT is required');
  if (!values.method) throw new WhittleError('BAD_USAGE', `whittle prune: --method is required (${PRUNE_METHODS.join(', ')})`);
  const isTfjs = sniffFormat(input) === 'tfjs';
  const deflate = values.deflate as DeflateChoice;
  if (!DEFLATE_CHOICES.includes(deflate)) throw new WhittleError('BAD_USAGE', `whittle prune: --deflate must be ${DEFLATE_CHOICES.join(', ')}, got "${values.deflate}"`);
  if (isTfjs) {
    if (!(TFJS_PRUNE_METHODS as readonly string[]).includes(values.method)) {
      throw new WhittleError('BAD_USAGE', `whittle prune: --method ${values.method} works on ONNX models; ${input} is a TF.js model, which takes ${TFJS_PRUNE_METHODS.join(', ')}`);
    }
    const onnxOnly = ['calib', 'preprocess', 'samples', 'round-to', 'importance', 'comparison', 'sequential', 'bias-correction'].filter((k) => values[k as keyof typeof values] !== undefined);
    if (onnxOnly.length) throw new WhittleError('BAD_USAGE', `whittle prune: ${onnxOnly.map((k) => `--${k}`).join(', ')} apply to ONNX models only, not to the TF.js model ${input}`);
  } else if (values['shard-bytes'] !== undefined) {
    throw new WhittleError('BAD_USAGE', 'whittle prune: --shard-bytes applies to TF.js models only');
  }
  const shardBytes = numberOption('prune', 'shard-bytes', values['shard-bytes'], { min: 1, integer: true });
  const ep = values.ep as EpChoice;
  if (!EP_CHOICES.includes(ep)) throw new WhittleError('BAD_USAGE', `whittle prune: --ep must be one of ${EP_CHOICES.join(', ')}`);
  const num = (name: string, raw: string | undefined) => numberOption('prune', name, raw);
  const raw = {
    method: values.method,
    ...(values.sparsity !== undefined ? { sparsity: num('sparsity', values.sparsity) } : {}),
    ...(values.scope ? { scope: values.scope } : {}),
    ...(values.pattern ? { pattern: values.pattern } : {}),
    ...(values.calib ? { calib: { path: values.calib, ...(values.preprocess ? { preprocess: values.preprocess } : {}) } } : {}),
    ...(values.samples ? { samples: num('samples', values.samples) } : {}),
    ...(values['round-to'] ? { roundTo: num('round-to', values['round-to']) } : {}),
    ...(values.importance ? { importance: values.importance } : {}),
    ...(values.comparison ? { comparison: values.comparison } : {}),
    sequential: Boolean(values.sequential),
    biasCorrection: Boolean(values['bias-correction']),
    exclude: splitList(values.exclude),
    protectFirstLast: Boolean(values['protect-first-last']),
    ...(values['min-parameters'] ? { minParameters: num('min-parameters', values['min-parameters']) } : {}),
    ...(values.plan ? { layerSparsity: readPlan(values.plan) } : {}),
  };
  const parsed = PruneStep.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new WhittleError('BAD_USAGE', `whittle prune: ${issue.path.join('.') || 'options'}: ${issue.message}`);
  }
  const step = parsed.data;
  const bar = new ProgressBar(io, 'prune');
  const inputs = [{ role: 'model', path: input }];
  if (step.calib && !step.calib.path.startsWith('synthetic:')) inputs.push({ role: 'calib', path: step.calib.path });
  if (values.plan) inputs.push({ role: 'plan', path: values.plan });
  const seed = Number(values.seed ?? 0);
  const report = await recordCommand({
    kind: 'prune',
    argv: ['prune', ...argv],
    inputs,
    // the plan file may change or go: the run keeps the step it read as a one-step recipe
    ...(values.plan ? { recipe: absoluteRecipe(Recipe.parse({ name: `prune ${step.method} with a per-layer plan`, model: input, seed, steps: [{ prune: step }] }), process.cwd()) } : {}),
    record: !values['no-record'],
    environment: { ep, seed },
    work: async () => {
      const progress = (phase: string, done: number, total: number) => bar.update(done, total, phase);
      const r = isTfjs
        ? await pruneTfjsModel({ input, output: values.output!, step, seed, shardBytes, progress })
        : await pruneModel({ input, output: values.output!, step, ep, seed, progress, deflate });
      bar.done();
      return r;
    },
    artifacts: (r: PruneReport | TfjsPruneReport) => ('files' in r ? r.files : [r.output, ...(r.externalDataPath ? [r.externalDataPath] : [])]),
  });
  for (const w of report.warnings) io.stderr(`whittle: warning: ${w}\n`);
  if (values.json) io.stdout(JSON.stringify(report) + '\n');
  else io.stdout(renderPrune(report));
  return 0;
}
