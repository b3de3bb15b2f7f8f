/**
 * SqueezeNet fp32, static int8: every calibrator × granularity, calibrated on imagenet-100 and
 * evaluated on the same 100 photos (the only labelled ImageNet data the fixtures have, so figures
 * are in-sample), with top-1 agreement and output SQNR against fp32 — the table issue 3 asks for.
 *
 * With --algorithms rtn,gptq (the default) every configuration runs twice: int8 weights rounded to
 * nearest, and with GPTQ choosing them (same scales; static-gptq.ts). --bias-correction off,on runs
 * each without and with bias correction (static-bias-correction.ts).
 *
 * With --views N (2–20) every model is also compared with fp32 on N test-time views of each photo
 * (bench/imagenet-views.ts: two scales × five crops × mirrored): agreement over 100·N inputs with a
 * 95 % interval bootstrapped over photos, the output SQNR over them, and how many photos flip in
 * any view. On 100 photos one photo is one point of agreement; the views say what a configuration's
 * agreement is, not which near-tie photo it happened to flip.
 *
 *   node --import tsx bench/quantize-squeezenet.ts [--samples 100] [--activation-type uint8|int8] [--algorithms rtn,gptq]
 *     [--calibrations minmax,percentile,entropy,mse] [--granularities per-tensor,per-channel] [--bias-correction off|on|off,on]
 *     [--views 10]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CALIBRATION_METHODS, QuantizeStep } from '../api/recipe.ts';
import { evaluate } from '../core/evaluate/evaluate.ts';
import { quantizeModel } from '../core/passes/quantize/quantize-model.ts';
import { fixture } from '../core/testing/fixtures.ts';
import { buildImagenetViews, compareOnViews, outputsOnViews } from './imagenet-views.ts';

const { values } = parseArgs({ options: { samples: { type: 'string', default: '100' }, 'activation-type': { type: 'string', default: 'uint8' }, algorithms: { type: 'string', default: 'rtn,gptq' }, 'bias-correction': { type: 'string', default: 'off' }, calibrations: { type: 'string', default: CALIBRATION_METHODS.join(',') }, granularities: { type: 'string', default: 'per-tensor,per-channel' }, views: { type: 'string' } } });
const list = (v: string) => v.split(',').map((a) => a.trim()).filter(Boolean);
const algorithms = list(values.algorithms);
const calibrations = list(values.calibrations).map((c) => QuantizeStep.shape.calibration.parse(c));
const corrections = list(values['bias-correction']).map((b) => b === 'on');
const granularities = list(values.granularities).map((g) => { if (g !== 'per-tensor' && g !== 'per-channel') throw new Error(`--granularities: per-tensor and/or per-channel, got ${g}`); return g === 'per-channel'; });
const fp32 = fixture('squeezenet', 'squeezenet1.0_fp32.onnx');
const data = fixture('imagenet-100');
const dir = mkdtempSync(join(tmpdir(), 'whittle-sq-'));
const rows: Record<string, unknown>[] = [];
try {
  const base = await evaluate({ model: fp32, data, preprocess: 'caffe', ep: 'cpu', warmup: 10, runs: 100 });
  console.log(`fp32: top-1 ${(base.accuracy!.top1 * 100).toFixed(0)} %, p50 ${base.latency.p50Ms.toFixed(2)} ms, ${base.bytes} B`);
  const views = values.views ? await buildImagenetViews(data, Number(values.views), dir) : null;
  const fp32OnViews = views ? await outputsOnViews(fp32, views, 'caffe') : null;
  if (views) console.log(`views: ${views.photos} photos × ${views.viewsPerPhoto} (${Array.from({ length: views.viewsPerPhoto }, (_, v) => views.describe(v)).join(', ')})`);
  for (const algorithm of algorithms) for (const calibration of calibrations) {
    for (const perChannel of granularities) for (const biasCorrection of corrections) {
      const out = join(dir, `${algorithm}-${calibration}-${perChannel ? 'pc' : 'pt'}-${biasCorrection ? 'bc' : 'plain'}.onnx`);
      const step = QuantizeStep.parse({ method: 'static', calib: { path: data, preprocess: 'caffe' }, samples: Number(values.samples), calibration, perChannel, activationType: values['activation-type'], algorithm, biasCorrection });
      const q = await quantizeModel({ input: fp32, output: out, step, ep: 'cpu' });
      const e = await evaluate({ model: out, data, preprocess: 'caffe', ep: 'cpu', reference: fp32, warmup: 10, runs: 100 });
      const row = {
        algorithm, calibration, granularity: perChannel ? 'per-channel' : 'per-tensor', biasCorrection,
        top1: e.accuracy!.top1, agreement: e.agreement!.top1, sqnrDb: e.agreement!.sqnrDb,
        bytes: q.bytesAfter, calibrateSeconds: q.calibration!.seconds, p50Ms: e.latency.p50Ms, speedup: base.latency.p50Ms / e.latency.p50Ms,
      };
      const onViews = views ? compareOnViews(fp32OnViews!, await outputsOnViews(out, views, 'caffe'), views) : null;
      if (onViews) Object.assign(row, { views: onViews });
      rows.push(row);
      const viewsText = onViews ? `  views: agreement ${(onViews.agreement * 100).toFixed(1)} % [${(onViews.interval[0] * 100).toFixed(1)}, ${(onViews.interval[1] * 100).toFixed(1)}]  SQNR ${onViews.sqnrDb.toFixed(1)} dB  margin noise ${onViews.marginNoise?.toFixed(3) ?? 'n/a'}  ${onViews.photosWithFlips} photos flip; by view ${onViews.byView.map((a) => (a * 100).toFixed(0)).join(' ')}` : '';
      console.log(`${algorithm.padEnd(5)} ${calibration.padEnd(10)} ${row.granularity.padEnd(11)} ${biasCorrection ? '+bc' : '   '} top-1 ${(row.top1 * 100).toFixed(0).padStart(3)} %  agreement ${(row.agreement! * 100).toFixed(0).padStart(3)} %  SQNR ${row.sqnrDb!.toFixed(1).padStart(5)} dB  ${row.bytes} B  calib ${row.calibrateSeconds.toFixed(1)} s  p50 ${row.p50Ms.toFixed(2)} ms (${row.speedup.toFixed(2)}× fp32)${viewsText}`);
    }
  }
  console.log(JSON.stringify({ bench: 'quantize-squeezenet', samples: Number(values.samples), viewsPerPhoto: views?.viewsPerPhoto ?? null, fp32: { top1: base.accuracy!.top1, p50Ms: base.latency.p50Ms, bytes: base.bytes }, rows }));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
