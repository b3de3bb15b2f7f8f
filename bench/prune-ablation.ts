/**
 * Why the calibrated pruning methods land where they do in bench/prune-table.ts: the same masks as
 * the passes (magnitude per layer, Wanda by row or by layer, SparseGPT), with the knobs the table
 * holds fixed varied one at a time — bias correction, sequential statistics, calibration size, and
 * which layers are pruned at all — and, with --local, each layer's own reconstruction error
 * ‖(W − Ŵ)X‖² / ‖WX‖² on the calibration rows instead of an end-to-end evaluation.
 *
 *   node --import tsx bench/prune-ablation.ts --model squeezenet --sparsities 0.3,0.5 \
 *       [--methods magnitude,wanda-layer,wanda-row,sparsegpt] [--bc 0,1] [--sequential] [--calib 32]
 *       [--layers 1-25] [--local]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openDataRef } from '../core/evaluate/data/index.ts';
import { batchSizeFor, evaluate, inputSpecs } from '../core/evaluate/evaluate.ts';
import { createPassContext } from '../core/passes/pass.ts';
import { addToOutputBias, outputMeanShift } from '../core/passes/prune/bias-correction.ts';
import { collectLayerInputs, layerMatrix, readMatrix, reconstructionError, writeMatrix, type GroupStats, type LayerMatrix } from '../core/passes/prune/layer-inputs.ts';
import { prunableWeights } from '../core/passes/prune/prunable.ts';
import { sparseGptPruneGroup } from '../core/passes/prune/sparsegpt.ts';
import { wandaPruneGroup } from '../core/passes/prune/wanda.ts';
import { NameAllocator } from '../core/passes/quantize/graph-edit.ts';
import { fixture } from '../core/testing/fixtures.ts';
import { writeOnnxFile } from '../native-models/formats/onnx/index.ts';
import { openModel } from '../native-models/formats/index.ts';
import type { Model } from '../native-models/ir/model.ts';
import { CALIB_FILE, MODEL_FILE, ZOO_DIR } from '../native-models/zoo/transformer/testbed.ts';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'squeezenet' }, sparsities: { type: 'string', default: '0.3,0.5' },
    methods: { type: 'string', default: 'magnitude,wanda-layer,wanda-row,sparsegpt' }, bc: { type: 'string', default: '0,1' },
    sequential: { type: 'boolean', default: false }, calib: { type: 'string' }, layers: { type: 'string' }, local: { type: 'boolean', default: false },
  },
});
const setups = {
  mnist: { model: fixture('mnist', 'mnist.onnx'), data: fixture('mnist', 't10k-images-idx3-ubyte.gz'), preprocess: 'mnist' as const, calib: 128, evalOffset: 256 },
  squeezenet: { model: fixture('squeezenet', 'squeezenet1.0_fp32.onnx'), data: fixture('imagenet-100'), preprocess: 'caffe' as const, calib: 32, evalOffset: 0 },
  // the transformer test bed (token windows, no labels): --local only
  transformer: { model: join(ZOO_DIR, MODEL_FILE), data: join(ZOO_DIR, CALIB_FILE), preprocess: undefined, calib: 128, evalOffset: 0 },
};
const s = setups[values.model as keyof typeof setups];
if (!s) throw new Error(`--model: mnist, squeezenet or transformer, got ${values.model}`);
if (values.model === 'transformer' && !values.local) throw new Error('--model transformer: with --local only (bench/gpu/transformer-table.ts has its perplexities)');
const sparsities = values.sparsities!.split(',').map(Number);
const methods = values.methods!.split(',');
const bcs = values.bc!.split(',').map((v) => v === '1');
const calib = Number(values.calib ?? s.calib);
const ctx = createPassContext();

function layersOf(m: Model): LayerMatrix[] {
  return prunableWeights(m).layers.map((w) => {
    const l = layerMatrix(w);
    if (typeof l === 'string') throw new Error(l);
    return l;
  });
}

/** "1-25,30" → [1..25, 30]; all layers when absent. */
function pick(spec: string | undefined, n: number): Set<number> {
  if (!spec) return new Set(Array.from({ length: n }, (_, i) => i));
  return new Set(spec.split(',').flatMap((part) => {
    const [a, b] = part.split('-').map(Number);
    return Array.from({ length: (b ?? a!) - a! + 1 }, (_, i) => a! + i);
  }));
}

/** Prunes one layer's matrices (all groups) in place with a method of this bench. */
async function pruneLayer(method: string, layer: LayerMatrix, w: Float64Array, stats: GroupStats[], sparsity: number): Promise<void> {
  const rows = layer.rowsPerGroup;
  for (let g = 0; g < layer.groups; g++) {
    const view = w.subarray(g * rows * layer.k, (g + 1) * rows * layer.k);
    const target = { kind: 'unstructured' as const, sparsity };
    if (method === 'magnitude') {
      const idx = Int32Array.from({ length: view.length }, (_, t) => t).sort((a, b) => Math.abs(view[a]!) - Math.abs(view[b]!) || a - b);
      for (let t = 0; t < Math.round(sparsity * view.length); t++) view[idx[t]!] = 0;
    } else if (method === 'wanda-layer' || method === 'wanda-row') {
      wandaPruneGroup(view, rows, layer.k, layer.segment, stats[g]!, target, method === 'wanda-row' ? 'row' : 'layer');
    } else if (method === 'sparsegpt') {
      await sparseGptPruneGroup(view, rows, layer.k, layer.segment, stats[g]!, target, { percdamp: 0.01, blockSize: 128 }, () => {});
    } else throw new Error(`unknown method ${method}`);
  }
}

const m0 = openModel(s.model);
const data = await openDataRef({ path: s.data, ...(s.preprocess ? { preprocess: s.preprocess } : {}) }, inputSpecs(m0), { baseDir: process.cwd(), limit: calib, seed: 0 });
const batchSize = batchSizeFor(inputSpecs(m0), 32);
const hessian = values.local || methods.includes('sparsegpt');
const { stats } = await collectLayerInputs(m0, layersOf(m0), { data, samples: calib, hessian, batchSize }, ctx);
const chosen = pick(values.layers, stats.length);

if (values.local) {
  for (const sparsity of sparsities) {
    console.log(`\n${values.model} ${sparsity * 100} %: each layer's own reconstruction error (calibration ${calib})`);
    console.log('layer'.padEnd(32) + methods.map((m) => m.padStart(13)).join('') + '  max/median ‖X_j‖');
    for (const [i, { layer, groups }] of stats.entries()) {
      if (!chosen.has(i)) continue;
      const before = readMatrix(layer);
      const cells: string[] = [];
      for (const method of methods) {
        const after = before.slice();
        await pruneLayer(method, layer, after, groups, sparsity);
        cells.push((await reconstructionError(layer, groups, before, after)).toFixed(4).padStart(13));
      }
      // how unequal the input features are: Wanda only reorders magnitude where they differ
      const norms = groups.flatMap((g) => [...g.sqNorm].filter((v) => v > 0).map(Math.sqrt)).sort((a, b) => a - b);
      const spread = norms.length ? norms[norms.length - 1]! / norms[Math.floor(norms.length / 2)]! : NaN;
      console.log(layer.weight.node.label.slice(0, 31).padEnd(32) + cells.join('') + spread.toFixed(1).padStart(18));
    }
  }
} else {
  const dir = mkdtempSync(join(tmpdir(), 'whittle-prune-ablation-'));
  try {
    console.log(`${values.model}: calibration ${calib}${values.sequential ? ', sequential' : ''}, layers ${values.layers ?? 'all'}`);
    console.log('sparsity  method         bc  top-1     agreement  SQNR');
    for (const sparsity of sparsities) for (const method of methods) for (const bc of bcs) {
      const m = openModel(s.model);
      const names = new NameAllocator(m);
      for (const [i, layer] of layersOf(m).entries()) {
        if (!chosen.has(i)) continue;
        const groups = values.sequential
          ? (await collectLayerInputs(m, [layer], { data, samples: calib, hessian: method === 'sparsegpt', batchSize }, ctx)).stats[0]!.groups
          : stats[i]!.groups;
        const before = readMatrix(layer);
        const after = before.slice();
        await pruneLayer(method, layer, after, groups, sparsity);
        writeMatrix(layer, after);
        if (bc) addToOutputBias(m, layer, outputMeanShift(layer, groups, before, after), names);
      }
      const out = join(dir, `${method}-${sparsity}-${bc}.onnx`);
      writeOnnxFile(m, out);
      const e = await evaluate({ model: out, data: s.data, preprocess: s.preprocess, offset: s.evalOffset, reference: s.model, ep: 'cpu', runs: 1, warmup: 0 });
      console.log(`${String(sparsity * 100).padStart(3)} %     ${method.padEnd(13)}  ${bc ? 1 : 0}  ${(e.accuracy!.top1 * 100).toFixed(2).padStart(6)} %  ${(e.agreement!.top1! * 100).toFixed(1).padStart(6)} %   ${e.agreement!.sqnrDb!.toFixed(2).padStart(6)} dB`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
