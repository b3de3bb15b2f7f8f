import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { main } from '../../cli/main.ts';
import { readOnnxFile, writeOnnxFile } from '../../native-models/formats/onnx/index.ts';
import { HELDOUT_FILE, loadTestBed } from '../../native-models/zoo/transformer/testbed.ts';
import { calibrate } from '../calibrate/index.ts';
import { openDataset } from '../evaluate/data/index.ts';
import { evaluate, inputSpecs } from '../evaluate/evaluate.ts';
import { createPassContext } from '../passes/pass.ts';
import { staticQdqPass } from '../passes/quantize/static-qdq.ts';
import { applyQuantizeStep } from '../passes/quantize/quantize-model.ts';
import { QuantizeStep } from '../../api/recipe.ts';
import { fixture } from '../testing/fixtures.ts';
import { int8Saturation } from '../../native-models/runtimes/cpu-int8.ts';
import { analyzePruneSensitivity } from './prune-sensitivity.ts';
import { analyzeQuantizeSensitivity, quantizableLayers } from './quantize-sensitivity.ts';
import { loadAnalysisData, TrialRunner } from './trial.ts';

const squeezenet = () => fixture('squeezenet', 'squeezenet1.0_fp32.onnx');

test('quantize sensitivity on SqueezeNet: the recommended exclusions raise static MinMax per-tensor output SQNR, measured again on held-out photos', async () => {
  const r = await analyzeQuantizeSensitivity({ model: squeezenet(), data: fixture('imagenet-100'), preprocess: 'caffe', limit: 30, targetSqnrDb: 30, holdout: 20 });
  assert.deepEqual(r.data, { path: fixture('imagenet-100', 'images.u8'), n: 30, offset: 0 });
  assert.equal(r.layers.length, 26);
  assert.deepEqual(r.layers.map((l) => l.rank).sort((a, b) => a! - b!), Array.from({ length: 26 }, (_, i) => i + 1));
  for (const l of r.layers) {
    assert.equal(l.metric, 'outputSqnrDb');
    assert.ok(l.outputSqnrDb! > 10 && l.layerSqnrDb! > 10, `${l.name}: ${l.outputSqnrDb} / ${l.layerSqnrDb}`);
  }
  const rec = r.recommendation;
  assert.ok(rec.exclude.length > 0);
  assert.ok(rec.withExclusions.sqnrDb! > rec.allInt8.sqnrDb!, `${rec.withExclusions.sqnrDb} vs all-int8 ${rec.allInt8.sqnrDb}`);
  console.log(`SqueezeNet static MinMax per-tensor on 30 images: all-int8 ${rec.allInt8.sqnrDb!.toFixed(2)} dB (top-1 ${rec.allInt8.top1}), with ${rec.layers.length} layer(s) float ${rec.withExclusions.sqnrDb!.toFixed(2)} dB (top-1 ${rec.withExclusions.top1}); ${rec.note}`);

  // independently: quantize with the recommended exclusions and measure again
  const path = squeezenet();
  const float = readOnnxFile(path);
  const cal = await calibrate(float, await openDataset(fixture('imagenet-100'), inputSpecs(float), { preprocess: 'caffe', limit: 30 }), { method: 'minmax', batchSize: 1 });
  const data = await loadAnalysisData(float, fixture('imagenet-100'), { preprocess: 'caffe', limit: 30 });
  const runner = await TrialRunner.create(float, data);
  try {
    const measure = async (exclude: string[]) => {
      const m = readOnnxFile(path);
      await staticQdqPass.run(m, { ranges: cal.ranges, exclude }, createPassContext());
      return (await runner.measure(m)).output.sqnrDb!;
    };
    const all = await measure([]);
    const withEx = await measure(rec.exclude);
    assert.ok(withEx > all, `${withEx} vs ${all}`);
  } finally {
    runner.close();
  }
  // the held-out check: photos 30–49, which neither the ranking nor the search saw
  const held = rec.heldOut!;
  assert.equal(held.n, 20);
  assert.equal(held.offset, 30);
  const heldData = await loadAnalysisData(float, fixture('imagenet-100'), { preprocess: 'caffe', limit: 20, offset: 30 });
  const heldRunner = await TrialRunner.create(float, heldData);
  try {
    for (const [exclude, expected] of [[[], held.allInt8], [rec.exclude, held.withExclusions]] as const) {
      const m = readOnnxFile(path);
      await staticQdqPass.run(m, { ranges: cal.ranges, exclude: [...exclude] }, createPassContext());
      const out = (await heldRunner.measure(m)).output;
      assert.equal(out.sqnrDb, expected.sqnrDb);
      assert.equal(out.top1, expected.top1);
    }
  } finally {
    heldRunner.close();
  }
  assert.match(rec.note, /On 20 held-out samples: all-int8 [\d.]+ dB, top-1 [\d.]+ → [\d.]+ dB, top-1 [\d.]+ with the exclusions$/);
});

test('quantize sensitivity --holdout: fewer samples left than asked is a warning, none left an error naming the file', async () => {
  const base = { model: fixture('mnist', 'mnist.onnx'), data: fixture('mnist', 't10k-images-idx3-ubyte.gz'), preprocess: 'mnist' as const, limit: 8 };
  const r = await analyzeQuantizeSensitivity({ ...base, offset: 9990, holdout: 10 });
  assert.deepEqual([r.recommendation.heldOut!.n, r.recommendation.heldOut!.offset], [2, 9998]);
  assert.ok(r.warnings.some((w) => /--holdout 10: .*t10k-images-idx3-ubyte\.gz has only 2 samples after the first 9998/.test(w)), r.warnings.join('\n'));
  await assert.rejects(analyzeQuantizeSensitivity({ ...base, offset: 9992, holdout: 10 }), /t10k-images-idx3-ubyte\.gz: no samples left for --holdout 10 after the first 10000/);
  assert.equal((await analyzeQuantizeSensitivity({ ...base, limit: 4 })).recommendation.heldOut, null);
});

test('quantize sensitivity with 8-bit weights (reduce range off): measured in their own arithmetic where this CPU saturates them, no layer looks worse than in 7 bits', async () => {
  // On an x86 CPU without VNNI the fused u8×s8 kernels saturate 8-bit weights: measured fused,
  // MNIST's first Conv ranked worst at 22.7 dB output SQNR (45.3 dB in its own arithmetic).
  const base = { model: fixture('mnist', 'mnist.onnx'), data: fixture('mnist', 't10k-images-idx3-ubyte.gz'), preprocess: 'mnist' as const, limit: 256 };
  const eight = await analyzeQuantizeSensitivity({ ...base, settings: { reduceRange: false } });
  const seven = await analyzeQuantizeSensitivity({ ...base, settings: { reduceRange: true } });
  const saturates = int8Saturation().saturates;
  assert.deepEqual(eight.settings.reduceRange, { on: false, auto: false, reason: 'asked for (--reduce-range off)', exactInt8: saturates });
  assert.equal(seven.settings.reduceRange?.exactInt8, false, '7-bit weights never saturate: measured fused');
  for (const l of eight.layers.filter((x) => x.op === 'Conv' || x.op === 'MatMul')) {
    const other = seven.layers.find((x) => x.name === l.name)!;
    console.log(`  ${l.name}: layer SQNR 8-bit ${l.layerSqnrDb!.toFixed(2)} dB, 7-bit ${other.layerSqnrDb!.toFixed(2)} dB`);
    assert.ok(l.layerSqnrDb! > other.layerSqnrDb! - 0.5, `${l.name}: 8-bit weights ${l.layerSqnrDb} dB, 7-bit ${other.layerSqnrDb} dB`);
  }
});

test('quantizable layers pair a Conv with the Relu that alone reads it', () => {
  const layers = quantizableLayers(readOnnxFile(squeezenet()));
  assert.equal(layers.length, 26);
  assert.deepEqual(layers[0]!.labels.map((l) => l.split('(')[0]), ['Conv', 'Relu']);
});

test('prune sensitivity on MNIST: curves, a plan at a 50 % budget, predicted and measured', async () => {
  const r = await analyzePruneSensitivity({ model: fixture('mnist', 'mnist.onnx'), data: fixture('mnist', 't10k-images-idx3-ubyte.gz'), preprocess: 'mnist', limit: 64, budgetRatio: 0.5 });
  assert.equal(r.layers.length, 3);
  for (const l of r.layers) {
    assert.equal(l.curve.length, 10);
    // more sparsity, more noise (allowing for a little noise between neighbouring points)
    assert.ok(l.curve[9]!.sqnrDb! < l.curve[1]!.sqnrDb!);
  }
  const rec = r.recommendation;
  assert.equal(rec.removedParameters, rec.budgetParameters);
  assert.equal(rec.budgetParameters, Math.round(0.5 * r.prunableParameters));
  assert.ok(rec.measured.top1! > 0.9, `measured agreement ${rec.measured.top1}`);
  assert.ok(Math.abs(rec.predicted.sqnrDb! - rec.measured.sqnrDb!) < 3, `${rec.predicted.sqnrDb} vs ${rec.measured.sqnrDb}`);
  assert.ok(rec.measured.sqnrDb! >= rec.uniform.sqnrDb!, 'the plan is no worse than the uniform spread');
  console.log(`MNIST prune plan at 50 %: predicted ${rec.predicted.sqnrDb!.toFixed(2)} dB, measured ${rec.measured.sqnrDb!.toFixed(2)} dB, agreement ${rec.measured.top1}; uniform ${rec.uniform.sqnrDb!.toFixed(2)} dB, agreement ${rec.uniform.top1}`);
  await assert.rejects(analyzePruneSensitivity({ model: fixture('mnist', 'mnist.onnx'), data: 'synthetic:4', budgetRatio: 0.95 }), /must be between 0 and 90/);
});

test('whittle analyze --for prune --json prints the SPEC shape and records per-layer metrics', async () => {
  const home = mkdtempSync(join(tmpdir(), 'whittle-analyze-home-'));
  const saved = process.env.WHITTLE_HOME;
  process.env.WHITTLE_HOME = home;
  try {
    let out = '';
    const io = { stdout: (s: string) => { out += s; }, stderr: () => {}, interactive: false };
    const code = await main(['analyze', fixture('mnist', 'mnist.onnx'), '--data', fixture('mnist', 't10k-images-idx3-ubyte.gz'), '--preprocess', 'mnist', '--limit', '32', '--offset', '256', '--holdout', '64', '--for', 'prune', '--budget-ratio', '0.5', '--json'], io as never);
    assert.equal(code, 0);
    const doc = JSON.parse(out);
    assert.equal(doc.for, 'prune');
    assert.deepEqual(doc.data, { path: fixture('mnist', 't10k-images-idx3-ubyte.gz'), n: 32, offset: 256 });
    // the plan and the uniform spread again on the 64 images after the analysed 32
    const held = doc.recommendation.heldOut;
    assert.deepEqual([held.n, held.offset], [64, 288]);
    for (const x of [held.planned, held.uniform]) assert.ok(x.sqnrDb > 5 && x.sqnrDb < 40 && x.top1 > 0.8, JSON.stringify(held));
    assert.notEqual(held.planned.sqnrDb, doc.recommendation.measured.sqnrDb, 'other samples, other figures');
    // the same analysis on the first 32 images measures other samples: other curves
    const first = await analyzePruneSensitivity({ model: fixture('mnist', 'mnist.onnx'), data: fixture('mnist', 't10k-images-idx3-ubyte.gz'), preprocess: 'mnist', limit: 32, budgetRatio: 0.5 });
    assert.equal(first.data.offset, 0);
    assert.notDeepEqual(first.layers.map((l) => l.curve.map((p) => p.sqnrDb)), doc.layers.map((l: { curve: { sqnrDb: number }[] }) => l.curve.map((p) => p.sqnrDb)));
    for (const l of doc.layers) for (const k of ['name', 'op', 'metric', 'value', 'rank']) assert.ok(k in l, k);
    assert.ok(Array.isArray(doc.recommendation.exclude));
    assert.ok(doc.runId);
    const { openStore } = await import('../store/index.ts');
    const store = openStore();
    try {
      const run = store.getRun(doc.runId);
      assert.ok(run.layerMetrics.some((m: { metric: string }) => m.metric === 'prune.plannedSparsity'));
    } finally {
      store.close();
    }
    out = '';
    assert.equal(await main(['analyze', fixture('mnist', 'mnist.onnx'), '--data', 'synthetic:2', '--for', 'nothing'], io as never), 2);
  } finally {
    if (saved === undefined) delete process.env.WHITTLE_HOME; else process.env.WHITTLE_HOME = saved;
    rmSync(home, { recursive: true, force: true });
  }
});

test('quantize sensitivity with GPTQ weights (a recipe step with algorithm gptq): every layer at least as close as with rounding to nearest', async () => {
  const base = { model: fixture('mnist', 'mnist.onnx'), data: fixture('mnist', 't10k-images-idx3-ubyte.gz'), preprocess: 'mnist' as const, limit: 128 };
  // (a step with bias correction: the trials run without it, said once; the result keeps the setting)
  const rtn = await analyzeQuantizeSensitivity({ ...base, settings: { biasCorrection: true } });
  assert.equal(rtn.settings.biasCorrection, true);
  assert.deepEqual(rtn.warnings.map((w) => w.split(':')[0]), ['bias correction']);
  const gptq = await analyzeQuantizeSensitivity({ ...base, settings: { algorithm: 'gptq' } });
  assert.equal(gptq.settings.algorithm, 'gptq');
  assert.deepEqual(gptq.warnings, []);
  // the two Convs and the MatMul have weights GPTQ chooses; their three bias Adds are analyzed too
  assert.deepEqual(gptq.layers.map((l) => l.op), ['Conv', 'Add', 'Conv', 'Add', 'MatMul', 'Add']);
  let better = 0;
  for (const l of gptq.layers.filter((x) => x.op !== 'Add')) {
    const r = rtn.layers.find((x) => x.name === l.name)!;
    // GPTQ minimises each layer's output error on these very samples
    assert.ok(l.layerSqnrDb! >= r.layerSqnrDb! - 0.05, `${l.name}: GPTQ ${l.layerSqnrDb} dB vs RTN ${r.layerSqnrDb} dB`);
    if (l.layerSqnrDb! > r.layerSqnrDb! + 0.5) better++;
  }
  assert.ok(better >= 2, `GPTQ clearly better on ${better} of 3 layers`);
});

test('quantize sensitivity on the character transformer: Adds and Muls are ranked with the MatMuls, perplexity per trial, and their exclusion measured again', async () => {
  const bed = loadTestBed();
  const data = join(bed.dir, HELDOUT_FILE);
  const r = await analyzeQuantizeSensitivity({ model: bed.model, data, limit: 32 });
  const ranked = r.layers.filter((l) => l.rank !== null);
  const count = (op: string) => ranked.filter((l) => l.op === op).length;
  assert.deepEqual([count('MatMul'), count('Add'), count('Mul')], [17, 18, 2]);
  // the masks before each Softmax stay float (static pass rule), said per node
  const skipped = r.layers.filter((l) => l.skipped);
  assert.deepEqual(skipped.map((l) => l.name), ['h0.attn.masked', 'h1.attn.masked']);
  for (const l of skipped) assert.match(l.skipped!, /mask before a Softmax/);
  // what costs most here is not a weight layer: the attention score scale of the first block
  const worst = ranked.find((l) => l.rank === 1)!;
  assert.notEqual(worst.op, 'MatMul', `worst: ${worst.name} (${worst.op})`);
  const bestMatMul = Math.min(...ranked.filter((l) => l.op === 'MatMul').map((l) => l.outputSqnrDb!));
  assert.ok(worst.outputSqnrDb! < bestMatMul - 3, `${worst.name} ${worst.outputSqnrDb} dB vs the worst MatMul's ${bestMatMul} dB`);
  // the unit that writes the model output is its own layer tap
  const head = r.layers.find((l) => l.name === 'lm_head.bias_add')!;
  assert.equal(head.layerSqnrDb, head.outputSqnrDb);
  for (const l of ranked) assert.ok(Math.abs(l.perplexity! / r.language!.floatPerplexity - 1) < 0.02, `${l.name}: ${l.perplexity}`);

  const rec = r.recommendation;
  const units = new Map(r.layers.map((l) => [l.name, l.op]));
  assert.ok(rec.layers.some((name) => units.get(name) !== 'MatMul'), `recommended: ${rec.layers.join(', ')}`);
  assert.ok(rec.withExclusions.sqnrDb! > rec.allInt8.sqnrDb! && rec.withExclusions.perplexity! < rec.allInt8.perplexity!);
  // every trial's size: a MatMul left float costs its weights in float (4 bytes instead of 1 each)
  const matmulStep = r.steps.find((st) => st.tried !== null && units.get(st.tried) === 'MatMul')!;
  // (compared with the step it was added to: the last one kept before it)
  const withoutIt = r.steps.slice(0, r.steps.indexOf(matmulStep)).filter((st) => st.kept).at(-1)!;
  assert.ok(matmulStep.bytes > withoutIt.bytes + 3 * 128 * 128 * 0.9, `${matmulStep.tried}: ${matmulStep.bytes} vs ${withoutIt.bytes}`);
  assert.equal(rec.allInt8.bytes, r.steps[0]!.bytes);
  console.log(`transformer static MinMax on 32 windows: float perplexity ${r.language!.floatPerplexity.toFixed(4)}, all-int8 ${rec.allInt8.perplexity!.toFixed(4)} (${rec.allInt8.sqnrDb!.toFixed(2)} dB), ${rec.layers.length} left float ${rec.withExclusions.perplexity!.toFixed(4)} (${rec.withExclusions.sqnrDb!.toFixed(2)} dB): ${rec.layers.join(', ')}`);

  // independently: calibrate, quantize with and without the exclusions, write, and evaluate
  const float = readOnnxFile(bed.model);
  const cal = await calibrate(float, await openDataset(data, inputSpecs(float), { limit: 32 }), { method: 'minmax', batchSize: 32 });
  const dir = mkdtempSync(join(tmpdir(), 'whittle-analyze-lm-'));
  try {
    const perplexity = async (exclude: string[], name: string) => {
      const m = readOnnxFile(bed.model);
      await staticQdqPass.run(m, { ranges: cal.ranges, exclude }, createPassContext());
      writeOnnxFile(m, join(dir, name));
      return (await evaluate({ model: join(dir, name), data, limit: 32, ep: 'cpu', runs: 1, warmup: 0 })).language!.perplexity;
    };
    const fp32 = (await evaluate({ model: bed.model, data, limit: 32, ep: 'cpu', runs: 1, warmup: 0 })).language!.perplexity;
    assert.ok(Math.abs(fp32 - r.language!.floatPerplexity) < 1e-6 * fp32, `${fp32} vs ${r.language!.floatPerplexity}`);
    const all = await perplexity([], 'all.onnx');
    const withEx = await perplexity(rec.exclude, 'rec.onnx');
    assert.ok(Math.abs(all - rec.allInt8.perplexity!) < 1e-6 * all, `${all} vs ${rec.allInt8.perplexity}`);
    assert.ok(Math.abs(withEx - rec.withExclusions.perplexity!) < 1e-6 * withEx, `${withEx} vs ${rec.withExclusions.perplexity}`);
    assert.ok(withEx < all);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('prune sensitivity on the character transformer: perplexity along every curve, and the plan beats the uniform spread in perplexity too', async () => {
  const bed = loadTestBed();
  const r = await analyzePruneSensitivity({ model: bed.model, data: join(bed.dir, HELDOUT_FILE), limit: 16, sparsities: [0.3, 0.6, 0.9], budgetRatio: 0.5 });
  const float = r.language!.floatPerplexity;
  assert.ok(float > 4 && float < 9, String(float));
  for (const l of r.layers) {
    assert.equal(l.curve[0]!.perplexity, float);
    // more of one layer pruned, a worse model (allowing a little noise between neighbouring points)
    assert.ok(l.curve[3]!.perplexity! > l.curve[1]!.perplexity! - 0.01, `${l.name}: ${l.curve.map((c) => c.perplexity).join(', ')}`);
  }
  const rec = r.recommendation;
  assert.ok(rec.measured.perplexity! < rec.uniform.perplexity!, `plan ${rec.measured.perplexity} vs uniform ${rec.uniform.perplexity}`);
});

test('weight-only sensitivity (a recipe step int4, block 128) on the transformer: each stored MatMul weight alone, and its exclusions measured again', async () => {
  const bed = loadTestBed();
  const data = join(bed.dir, HELDOUT_FILE);
  const r = await analyzeQuantizeSensitivity({ model: bed.model, data, limit: 32, settings: { method: 'int4', blockSize: 128 }, targetAgreement: 0.995 });
  assert.deepEqual([r.settings.method, r.settings.weightOnly], ['int4', { blockSize: 128, symmetric: false, format: 'matmulnbits' }]);
  // the 13 MatMuls with stored weights; attention's activation × activation MatMuls are not candidates
  assert.equal(r.layers.length, 13);
  assert.ok(r.layers.every((l) => l.op === 'MatMul' && l.rank !== null && !/scores|context/.test(l.name)));
  assert.deepEqual(r.warnings.filter((w) => /not analyzed/.test(w)), []);
  const rec = r.recommendation;
  assert.ok(rec.layers.length > 0 && rec.withExclusions.perplexity! < rec.allInt8.perplexity!, JSON.stringify(rec));
  console.log(`transformer int4 RTN block 128 on 32 windows: float ${r.language!.floatPerplexity.toFixed(4)}, all-int4 ${rec.allInt8.perplexity!.toFixed(4)}, ${rec.layers.join(', ')} float ${rec.withExclusions.perplexity!.toFixed(4)}`);

  // independently: the int4 step with those exclusions, written and evaluated
  const dir = mkdtempSync(join(tmpdir(), 'whittle-analyze-int4-'));
  try {
    const m = readOnnxFile(bed.model);
    await applyQuantizeStep(m, QuantizeStep.parse({ method: 'int4', blockSize: 128, exclude: rec.exclude }), createPassContext());
    writeOnnxFile(m, join(dir, 'int4.onnx'));
    const e = await evaluate({ model: join(dir, 'int4.onnx'), data, limit: 32, ep: 'cpu', runs: 1, warmup: 0 });
    assert.ok(Math.abs(e.language!.perplexity - rec.withExclusions.perplexity!) < 1e-6 * e.language!.perplexity, `${e.language!.perplexity} vs ${rec.withExclusions.perplexity}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
