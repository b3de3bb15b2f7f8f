/**
 * Unstructured pruning quality, the table issue 4 asks for: sparsity 30/50/70/90 % × magnitude,
 * Wanda, SparseGPT on MNIST (top-1 on test images 256..9999, calibrated on the first 128) and
 * SqueezeNet fp32 (top-1 agreement and output SQNR vs fp32 on imagenet-100, calibrated on 32 of
 * its photos — in-sample, the only labelled ImageNet data the fixtures have). Each method runs as
 * published ('plain') and with bias correction ('bc': every pruned layer's output means kept on the
 * calibration data — an addition, magnitude included so the comparison stays fair).
 *
 *   node --import tsx bench/prune-table.ts [--models mnist,squeezenet] [--sparsities 0.3,0.5,0.7,0.9]
 *       [--variants plain,bc] [--sequential] [--sq-calib 32]      (METHODS=magnitude,wanda,sparsegpt)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PruneStep } from '../api/recipe.ts';
import { evaluate } from '../core/evaluate/evaluate.ts';
import { pruneModel } from '../core/passes/prune/prune-model.ts';
import { fixture } from '../core/testing/fixtures.ts';

const { values } = parseArgs({
  options: {
    models: { type: 'string', default: 'mnist,squeezenet' }, sparsities: { type: 'string', default: '0.3,0.5,0.7,0.9' },
    variants: { type: 'string', default: 'plain,bc' }, sequential: { type: 'boolean', default: false }, 'sq-calib': { type: 'string' },
  },
});
const sparsities = values.sparsities!.split(',').map(Number);
const variants = values.variants!.split(',') as ('plain' | 'bc')[];
if (variants.some((v) => v !== 'plain' && v !== 'bc')) throw new Error(`--variants: plain and/or bc, got ${values.variants}`);
const methods = (process.env.METHODS ?? 'magnitude,wanda,sparsegpt').split(',') as ('magnitude' | 'wanda' | 'sparsegpt')[];
const setups = {
  mnist: { model: fixture('mnist', 'mnist.onnx'), data: fixture('mnist', 't10k-images-idx3-ubyte.gz'), preprocess: 'mnist' as const, calibSamples: 128, evalOffset: 256 },
  squeezenet: { model: fixture('squeezenet', 'squeezenet1.0_fp32.onnx'), data: fixture('imagenet-100'), preprocess: 'caffe' as const, calibSamples: Number(values['sq-calib'] ?? process.env.SQ_CALIB ?? 32), evalOffset: 0 },
};
const dir = mkdtempSync(join(tmpdir(), 'whittle-prune-bench-'));
const rows: Record<string, unknown>[] = [];
try {
  for (const name of values.models!.split(',') as (keyof typeof setups)[]) {
    const s = setups[name];
    const base = await evaluate({ model: s.model, data: s.data, preprocess: s.preprocess, offset: s.evalOffset, ep: 'cpu', runs: 1, warmup: 0 });
    console.log(`\n${name}: fp32 top-1 ${(base.accuracy!.top1 * 100).toFixed(2)} % on ${base.data.n} samples`);
    console.log('sparsity  method         top-1     agreement  SQNR      seconds');
    for (const sparsity of sparsities) {
      for (const method of methods) for (const variant of variants) {
        const out = join(dir, `${name}-${method}-${variant}-${sparsity}.onnx`);
        const biasCorrection = variant === 'bc';
        const calibrated = method !== 'magnitude' || biasCorrection;
        const step = PruneStep.parse({
          method, sparsity, biasCorrection,
          ...(calibrated ? { calib: { path: s.data, preprocess: s.preprocess }, samples: s.calibSamples } : {}),
          ...(method !== 'magnitude' ? { sequential: values.sequential } : {}),
        });
        const t0 = performance.now();
        await pruneModel({ input: s.model, output: out, step, ep: 'cpu' });
        const seconds = (performance.now() - t0) / 1000;
        const e = await evaluate({ model: out, data: s.data, preprocess: s.preprocess, offset: s.evalOffset, reference: s.model, ep: 'cpu', runs: 1, warmup: 0 });
        const row = { model: name, sparsity, method, biasCorrection, sequential: method !== 'magnitude' && values.sequential, calibSamples: calibrated ? s.calibSamples : 0, top1: e.accuracy!.top1, agreement: e.agreement!.top1, sqnrDb: e.agreement!.sqnrDb, seconds };
        rows.push(row);
        console.log(`${String(sparsity * 100).padStart(3)} %     ${(method + (biasCorrection ? '+bc' : '')).padEnd(13)}  ${(row.top1 * 100).toFixed(2).padStart(6)} %  ${((row.agreement ?? 0) * 100).toFixed(1).padStart(6)} %   ${(row.sqnrDb ?? NaN).toFixed(1).padStart(5)} dB  ${seconds.toFixed(1).padStart(6)}`);
      }
    }
  }
  console.log(JSON.stringify({ bench: 'prune-table', rows }));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
