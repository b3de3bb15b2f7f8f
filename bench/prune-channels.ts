/**
 * Structured pruning, cut vs refitted, on the models the README reports. Channel pruning
 * (core/passes/prune/channel/reconstruct.ts): MNIST (both conv groups, top-1 on the 9,744 test images
 * after the 256 calibration ones), SqueezeNet (agreement with fp32 on imagenet-100, 32 calibration
 * photos) and the transformer test bed's MLPs (held-back next-token perplexity). Attention-head
 * pruning (core/passes/prune/heads.ts): the test bed's attention heads ('transformer-heads'). Each
 * row: the plain cut (L2 importance, no data), the least-squares refit of the layers after, and the
 * refit with activation importance — all in this run, against the unpruned model measured here too.
 *
 *   node --import tsx bench/prune-channels.ts [--models mnist,squeezenet,transformer,transformer-heads,transformer-heads-global] [--json OUT]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PruneStep } from '../api/recipe.ts';
import { evaluate } from '../core/evaluate/evaluate.ts';
import { pruneModel } from '../core/passes/prune/prune-model.ts';
import { fixture } from '../core/testing/fixtures.ts';
import { HELDOUT_FILE, loadTestBed } from '../native-models/zoo/transformer/testbed.ts';

interface Setup {
  name: string;
  method: 'channel' | 'heads';
  /** heads: 'global' ranks heads across blocks. */
  scope?: 'layer' | 'global';
  model: string;
  calib: { path: string; preprocess?: 'mnist' | 'caffe' };
  samples: number;
  cases: { sparsity: number; roundTo: number }[];
  /** The figure reported (higher is better unless `lower`). */
  measure: (path: string) => Promise<number>;
  metric: string;
  lower?: boolean;
}

const mnist = fixture('mnist', 'mnist.onnx');
const mnistData = fixture('mnist', 't10k-images-idx3-ubyte.gz');
const squeezenet = fixture('squeezenet', 'squeezenet1.0_fp32.onnx');
const bed = loadTestBed();

const SETUPS: Setup[] = [
  {
    name: 'mnist', method: 'channel', model: mnist, calib: { path: mnistData, preprocess: 'mnist' }, samples: 256,
    cases: [{ sparsity: 0.25, roundTo: 1 }, { sparsity: 0.5, roundTo: 1 }],
    measure: async (path) => (await evaluate({ model: path, data: mnistData, preprocess: 'mnist', offset: 256, ep: 'cpu', runs: 1, warmup: 0 })).accuracy!.top1,
    metric: 'top-1 on 9,744',
  },
  {
    name: 'squeezenet', method: 'channel', model: squeezenet, calib: { path: fixture('imagenet-100'), preprocess: 'caffe' }, samples: 32,
    cases: [{ sparsity: 0.1, roundTo: 1 }, { sparsity: 0.3, roundTo: 8 }],
    measure: async (path) => (await evaluate({ model: path, data: fixture('imagenet-100'), preprocess: 'caffe', reference: squeezenet, ep: 'cpu', runs: 1, warmup: 0 })).agreement!.top1!,
    metric: 'top-1 agreement with fp32',
  },
  {
    name: 'transformer', method: 'channel', model: bed.model, calib: { path: bed.calibPath }, samples: 128,
    cases: [{ sparsity: 0.25, roundTo: 8 }, { sparsity: 0.5, roundTo: 8 }, { sparsity: 0.75, roundTo: 8 }],
    measure: async (path) => (await evaluate({ model: path, data: join(bed.dir, HELDOUT_FILE), ep: 'cpu', runs: 1, warmup: 0 })).language!.perplexity,
    metric: 'held-back perplexity', lower: true,
  },
  {
    // 4 heads per block: 1, 2 or 3 of them removed ('round' does not apply to heads)
    name: 'transformer-heads', method: 'heads', model: bed.model, calib: { path: bed.calibPath }, samples: 128,
    cases: [{ sparsity: 0.25, roundTo: 1 }, { sparsity: 0.5, roundTo: 1 }, { sparsity: 0.75, roundTo: 1 }],
    measure: async (path) => (await evaluate({ model: path, data: join(bed.dir, HELDOUT_FILE), ep: 'cpu', runs: 1, warmup: 0 })).language!.perplexity,
    metric: 'held-back perplexity', lower: true,
  },
  {
    name: 'transformer-heads-global', method: 'heads', scope: 'global', model: bed.model, calib: { path: bed.calibPath }, samples: 128,
    cases: [{ sparsity: 0.25, roundTo: 1 }, { sparsity: 0.5, roundTo: 1 }, { sparsity: 0.75, roundTo: 1 }],
    measure: async (path) => (await evaluate({ model: path, data: join(bed.dir, HELDOUT_FILE), ep: 'cpu', runs: 1, warmup: 0 })).language!.perplexity,
    metric: 'held-back perplexity', lower: true,
  },
];

const { values } = parseArgs({ options: { models: { type: 'string', default: 'mnist,squeezenet,transformer,transformer-heads,transformer-heads-global' }, json: { type: 'string' } } });
const wanted = new Set(values.models!.split(','));
const dir = mkdtempSync(join(tmpdir(), 'whittle-prune-channels-'));
const rows: Record<string, unknown>[] = [];
const fmt = (s: Setup, v: number) => (s.lower ? v.toFixed(3) : `${(v * 100).toFixed(2)} %`);
try {
  for (const s of SETUPS.filter((x) => wanted.has(x.name))) {
    const base = await s.measure(s.model);
    console.log(`\n${s.name} (${s.method} pruning): ${s.metric}, unpruned ${fmt(s, base)}`);
    console.log('removed  round  parameters              cut        refitted   refitted+activation  refit seconds');
    for (const c of s.cases) {
      const run = async (variant: 'cut' | 'refit' | 'activation') => {
        const output = join(dir, `${s.name}-${c.sparsity}-${variant}.onnx`);
        const step = PruneStep.parse({
          method: s.method, sparsity: c.sparsity, roundTo: c.roundTo, ...(s.scope ? { scope: s.scope } : {}),
          ...(variant === 'cut' ? {} : { calib: s.calib, samples: s.samples }),
          ...(variant === 'activation' ? { importance: 'activation' } : {}),
        });
        const t0 = performance.now();
        const r = await pruneModel({ input: s.model, output, step, seed: 0 });
        const seconds = (performance.now() - t0) / 1000;
        return { value: await s.measure(output), parameters: r.parametersAfter, parametersBefore: r.parametersBefore, seconds };
      };
      const cut = await run('cut');
      const refit = await run('refit');
      const activation = await run('activation');
      console.log(`${`${c.sparsity * 100} %`.padEnd(9)}${String(c.roundTo).padEnd(7)}${`${cut.parametersBefore.toLocaleString('en-US')} → ${cut.parameters.toLocaleString('en-US')}`.padEnd(24)}${fmt(s, cut.value).padEnd(11)}${fmt(s, refit.value).padEnd(11)}${fmt(s, activation.value).padEnd(21)}${refit.seconds.toFixed(1)}`);
      rows.push({ model: s.name, method: s.method, ...(s.scope ? { scope: s.scope } : {}), metric: s.metric, unpruned: base, ...c, parameters: [cut.parametersBefore, cut.parameters], cut: cut.value, refit: refit.value, activation: activation.value, refitSeconds: refit.seconds });
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(JSON.stringify({ bench: 'prune-channels', rows }));
if (values.json) writeFileSync(values.json, JSON.stringify(rows, null, 1) + '\n');
