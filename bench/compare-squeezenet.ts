/**
 * Quantized SqueezeNets from any tool, side by side against the fp32 fixture: top-1 agreement and
 * output SQNR on the 100 imagenet-100 photos (with the 95 % Wilson interval) and on N test-time views
 * of each (bench/imagenet-views.ts: agreement with a 95 % interval bootstrapped over photos, SQNR,
 * the RMS change of fp32's top-2 margin; with --paired A:B, the difference of two models' agreement
 * on the same views with a 95 % interval from the same bootstrap over photos), and CPU latency measured in alternating rounds in this one
 * process (median of each model's per-round p50), so load drift hits every model alike.
 *
 * Made to put Whittle's models beside onnxruntime's Python quantizer's on the same photos (issue 3:
 * "no slower than onnxruntime-quantizer output", and whether 99 % agreement is a property of a
 * configuration or of 100 photos); any ONNX model with SqueezeNet's input and output works.
 *
 *   node --import tsx bench/compare-squeezenet.ts A.onnx [B.onnx ...] [--views 20] [--runs 200] [--rounds 3]
 *        [--paired 1:2,3:4]   (1-based positions of the models given)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';
import { wilsonInterval } from '../core/evaluate/metrics.ts';
import { openDataset, type HostTensor } from '../core/evaluate/data/index.ts';
import { inputSpecs } from '../core/evaluate/evaluate.ts';
import { readOnnxFile } from '../native-models/formats/onnx/index.ts';
import { fixture } from '../core/testing/fixtures.ts';
import { createSession, runSession } from '../native-models/runtimes/onnxruntime.ts';
import { agreementFlags, buildImagenetViews, compareOnViews, outputsOnViews, photoBootstrap } from './imagenet-views.ts';
import { fmt, median } from './lib/child.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { paired: { type: 'string', default: '' }, views: { type: 'string', default: '20' }, runs: { type: 'string', default: '200' }, rounds: { type: 'string', default: '3' } },
});
if (positionals.length === 0) {
  console.error('usage: node --import tsx bench/compare-squeezenet.ts A.onnx [B.onnx ...] [--views 20] [--runs 200] [--rounds 3]');
  process.exit(2);
}
const fp32 = fixture('squeezenet', 'squeezenet1.0_fp32.onnx');

const dir = mkdtempSync(join(tmpdir(), 'whittle-cmp-'));
try {
  const views = await buildImagenetViews(fixture('imagenet-100'), Number(values.views), dir);
  const reference = await outputsOnViews(fp32, views, 'caffe');
  const centre = (rows: Float32Array[]) => rows.filter((_, s) => s % views.viewsPerPhoto === 0);
  const centreViews = { ...views, viewsPerPhoto: 1 };
  const models = [fp32, ...positionals];
  const rows = [];
  for (const model of positionals) {
    const outputs = await outputsOnViews(model, views, 'caffe');
    const photos = compareOnViews(centre(reference), centre(outputs), centreViews);
    const flags = agreementFlags(reference, outputs);
    rows.push({ model, photos, views: compareOnViews(reference, outputs, views, flags), flags });
  }

  // latency: every model in turn, --rounds times, on one fixed photo
  const photo = await openDataset(fixture('imagenet-100'), inputSpecs(readOnnxFile(fp32, { lazyTensors: true })), { preprocess: 'caffe', limit: 1 });
  let feed: HostTensor | null = null;
  for await (const batch of photo.batches(1)) feed ??= batch.inputs['data_0']!;
  const sessions = await Promise.all(models.map(async (m) => (await createSession(m, { ep: 'cpu' })).session));
  const p50s: number[][] = models.map(() => []);
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const [i, session] of sessions.entries()) {
      const feeds = { [session.inputNames[0]!]: feed! };
      for (let w = 0; w < 10; w++) await runSession(session, feeds);
      const times: number[] = [];
      for (let r = 0; r < Number(values.runs); r++) {
        const t = performance.now();
        await runSession(session, feeds);
        times.push(performance.now() - t);
      }
      p50s[i]!.push(median(times));
    }
  }
  await Promise.all(sessions.map((s) => s.release()));
  const fp32Ms = median(p50s[0]!);

  const pct = (x: number) => `${(x * 100).toFixed(1)}`;
  console.log(`fp32 ${fp32}: p50 ${fmt(fp32Ms, 2)} ms; ${views.photos} photos × ${views.viewsPerPhoto} views`);
  console.log('model | 100 photos: agreement [95 %] / SQNR | views: agreement [95 %] / SQNR / margin noise | p50 ms (× fp32)');
  for (const [i, r] of rows.entries()) {
    const ms = median(p50s[i + 1]!);
    const agreed = Math.round(r.photos.agreement * views.photos);
    const [lo, hi] = wilsonInterval(agreed, views.photos);
    console.log(`${basename(r.model).padEnd(28)} | ${pct(r.photos.agreement)} % [${pct(lo)}, ${pct(hi)}] / ${r.photos.sqnrDb.toFixed(1)} dB | ${pct(r.views.agreement)} % [${pct(r.views.interval[0])}, ${pct(r.views.interval[1])}] / ${r.views.sqnrDb.toFixed(1)} dB / ${(r.views.marginNoise?.toFixed(3) ?? 'n/a (8-bit probabilities)')} | ${fmt(ms, 2)} (${(fp32Ms / ms).toFixed(2)}× faster)`);
  }
  const pairs = values.paired.split(',').filter(Boolean).map((p) => p.split(':').map((k) => Number(k) - 1) as [number, number]);
  const differences = [];
  for (const [a, b] of pairs) {
    const A = rows[a], B = rows[b];
    if (!A || !B) throw new Error(`--paired ${a + 1}:${b + 1}: there are ${rows.length} models`);
    const d = A.flags.map((f, s) => f - B.flags[s]!);
    const mean = d.reduce((x, y) => x + y, 0) / d.length;
    const [lo, hi] = photoBootstrap(d, views.viewsPerPhoto);
    differences.push({ a: A.model, b: B.model, difference: mean, interval: [lo, hi] });
    console.log(`${basename(A.model)} − ${basename(B.model)}: agreement on the views ${mean >= 0 ? '+' : ''}${pct(mean)} pt [${pct(lo)}, ${pct(hi)}]${lo > 0 || hi < 0 ? '' : ' (the interval holds 0: not told apart)'}`);
  }
  console.log(JSON.stringify({ bench: 'compare-squeezenet', viewsPerPhoto: views.viewsPerPhoto, fp32Ms, rows: rows.map(({ flags: _, ...r }, i) => ({ ...r, p50Ms: median(p50s[i + 1]!) })), differences }));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
