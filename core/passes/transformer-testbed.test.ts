/**
 * The passes on the project's transformer test bed (native-models/zoo/transformer): a sequence
 * model, whose MatMuls see [batch, tokens, K] activations — thousands of rows per batch where the
 * CNN fixtures have tens — and whose attention adds a −1e9 causal mask before each Softmax. The
 * orderings the README's perplexity table reports must hold: GPTQ int4 below RTN int4 at the same
 * block, SparseGPT below magnitude at 50 % and 2:4; int8 stays within 1 % of fp32.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { PruneStep, QuantizeStep } from '../../api/recipe.ts';
import { onnxPerplexity } from '../../native-models/zoo/transformer/export.ts';
import { loadTestBed } from '../../native-models/zoo/transformer/testbed.ts';
import { applyQuantizeStep } from './quantize/quantize-model.ts';
import { runStepOnFile } from './run-on-file.ts';
import { pruneModel } from './prune/prune-model.ts';

const bed = loadTestBed();
const dir = mkdtempSync(join(tmpdir(), 'whittle-testbed-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
async function perplexity(path: string): Promise<number> {
  return (await onnxPerplexity(path, bed.heldout.inputs, bed.heldout.targets, bed.card.spec.context)).perplexity;
}

async function quantized(step: Record<string, unknown>): Promise<number> {
  const output = join(dir, `${files++}.onnx`);
  const calib = step.algorithm === 'gptq' || step.method === 'static' ? { calib: { path: bed.calibPath } } : {};
  await runStepOnFile({ input: bed.model, output, step: QuantizeStep.parse({ ...step, ...calib }), seed: 0 }, applyQuantizeStep);
  return perplexity(output);
}

async function pruned(step: Record<string, unknown>): Promise<{ perplexity: number; sparsity: number }> {
  const output = join(dir, `${files++}.onnx`);
  const calibrated = step.method === 'wanda' || step.method === 'sparsegpt';
  const r = await pruneModel({ input: bed.model, output, step: PruneStep.parse({ ...(calibrated ? { calib: { path: bed.calibPath } } : {}), ...step }), seed: 0 });
  return { perplexity: await perplexity(output), sparsity: r.sparsity };
}

describe('passes on the transformer test bed', () => {
  it('int8, dynamic and static (the masked Adds stay float): held-back perplexity within 1 % of fp32', async () => {
    const fp32 = await perplexity(bed.model);
    for (const step of [{ method: 'dynamic' }, { method: 'static' }, { method: 'static', perChannel: true, algorithm: 'gptq' }]) {
      const ppl = await quantized(step);
      assert.ok(ppl < fp32 * 1.01, `${JSON.stringify(step)}: ${ppl} vs fp32 ${fp32}`);
    }
  });

  it('int4 block 128: GPTQ has a lower held-back perplexity than round-to-nearest', async () => {
    const fp32 = await perplexity(bed.model);
    const rtn = await quantized({ method: 'int4', blockSize: 128 });
    const gptq = await quantized({ method: 'int4', blockSize: 128, algorithm: 'gptq' });
    assert.ok(gptq < rtn, `GPTQ ${gptq} vs RTN ${rtn}`);
    assert.ok(rtn > fp32 && gptq < fp32 * 1.01, `fp32 ${fp32}, RTN ${rtn}, GPTQ ${gptq}`);
  });

  it('channel pruning takes half of every MLP’s hidden units (the rest is pinned); refitting fc2 on calibration data recovers most of the perplexity', async () => {
    const fp32 = await perplexity(bed.model);
    const cut = await pruned({ method: 'channel', sparsity: 0.5 });
    const refit = await pruned({ method: 'channel', sparsity: 0.5, calib: { path: bed.calibPath } });
    assert.ok(refit.perplexity < cut.perplexity && refit.perplexity < fp32 * 1.15, `fp32 ${fp32}, cut ${cut.perplexity}, refitted ${refit.perplexity}`);
    // ranked by the energy each hidden unit gives fc2 on the calibration text: lower still (7.10 vs 7.25 in-window)
    const activation = await pruned({ method: 'channel', sparsity: 0.5, importance: 'activation', calib: { path: bed.calibPath } });
    assert.ok(activation.perplexity < refit.perplexity, `activation ${activation.perplexity} vs L2 ${refit.perplexity}`);
  });

  for (const shape of [{ sparsity: 0.5 }, { pattern: '2:4' }]) {
    const name = 'pattern' in shape ? shape.pattern : `${shape.sparsity * 100} %`;
    it(`${name}: SparseGPT has a lower held-back perplexity than magnitude, at the same sparsity`, async () => {
      const magnitude = await pruned('pattern' in shape ? { method: 'nm', ...shape } : { method: 'magnitude', ...shape });
      const sparsegpt = await pruned({ method: 'sparsegpt', ...shape });
      const wanda = await pruned({ method: 'wanda', comparison: 'row', ...shape });
      assert.ok(sparsegpt.perplexity < magnitude.perplexity, `SparseGPT ${sparsegpt.perplexity} vs magnitude ${magnitude.perplexity}`);
      assert.ok(Math.abs(sparsegpt.sparsity - magnitude.sparsity) < 1e-9 && Math.abs(wanda.sparsity - magnitude.sparsity) < 1e-9);
      // Wanda runs (it collected every token's row) and stays in the same range; that it does not beat
      // magnitude on this small model is measured and explained in docs/gpu.md
      assert.ok(wanda.perplexity < magnitude.perplexity * 1.1, `Wanda ${wanda.perplexity} vs magnitude ${magnitude.perplexity}`);
    });
  }
});
