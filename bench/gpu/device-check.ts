/**
 * The GPU check of issue 6 as one command (bench/gpu/device-check.sh runs it on the device
 * machine; docs/gpu.md says how to pack and run it). Sections, each timed and each allowed to fail
 * on its own:
 *
 *  1. adapters: the WebGPU compute adapter (native-models/gpu), onnxruntime's WebGPU EP, CUDA;
 *  2. eval: the SqueezeNet fixture and a generated ResNet-50-sized model on onnxruntime's CPU and
 *     WebGPU execution providers (median latency, speed ratio, output agreement), and
 *     `whittle eval --ep auto` to show which EP auto picks;
 *  3. GPTQ on the transformer test bed, CPU path vs GPU (time, held-back perplexity of both);
 *  4. GPTQ on a generated 4096×4096 layer with 65,536 calibration tokens: Hessian accumulation,
 *     factorization and column updates on the CPU (worker threads, float64) and the GPU (WGSL,
 *     float32): times, ratio, agreement (equal codes, GPTQ loss, layer error on sampled rows);
 *  5. SparseGPT 50 % on the transformer test bed, CPU vs GPU (time, held-back perplexity), and
 *     on the same 4096×4096 layer and Hessian (factorization, mask selection and updates: times,
 *     ratio, agreement — equal masks, layer error);
 *  6. magnitude pruning of the ResNet-50-sized model, one global threshold and per layer, with the
 *     thresholds found on the CPU (quickselect) and on the GPU (radix select): times, ratio, and
 *     whether the same weights were zeroed.
 *
 *   node --import tsx bench/gpu/device-check.ts [--small] [--json OUT] [--only SECTIONS]
 *
 * --small shrinks every size (512² layer, 8,192 tokens, a narrow short ResNet) so the whole check
 * runs in a minute on a laptop CPU: CI-style smoke of the script itself. Without an adapter the GPU
 * halves say why and are skipped.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { dequantize, gptqQuantize } from '../../core/passes/quantize/gptq.ts';
import { sparseGptPruneGroup, sparseGptPrunePass } from '../../core/passes/prune/sparsegpt.ts';
import { magnitudePrunePass } from '../../core/passes/prune/magnitude.ts';
import { gptqQuantizePass } from '../../core/passes/quantize/gptq-pass.ts';
import { createPassContext, type PassReport } from '../../core/passes/pass.ts';
import { openDataRef, type Dataset } from '../../core/evaluate/data/index.ts';
import { inputSpecs } from '../../core/evaluate/evaluate.ts';
import { readOnnxFile, writeOnnxFile } from '../../native-models/formats/onnx/index.ts';
import type { Model } from '../../native-models/ir/model.ts';
import { computeStatus, GpuDevice } from '../../native-models/gpu/device.ts';
import { mirrorUpper } from '../../native-models/gpu/kernels-cpu.mjs';
import { GpuHessian, gptqGpu, sparseGptGpu } from '../../native-models/gpu/kernels-gpu.ts';
import { CpuThreads, defaultThreads, sharedArray, xtxParallel } from '../../native-models/gpu/threads.ts';
import { seededGaussian, seededRandom } from '../../native-models/ir/random.ts';
import { listDevices } from '../../native-models/runtimes/devices.ts';
import { createSession, runSession } from '../../native-models/runtimes/onnxruntime.ts';
import { onnxPerplexity } from '../../native-models/zoo/transformer/export.ts';
import { loadTestBed } from '../../native-models/zoo/transformer/testbed.ts';
import { resnet50Model } from './resnet50.ts';

const { values } = parseArgs({ options: { small: { type: 'boolean' }, json: { type: 'string' }, only: { type: 'string' } } });
const small = Boolean(values.small);
const only = values.only ? new Set(values.only.split(',')) : null;
const results: Record<string, unknown> = { small, node: process.version, cpu: `${cpus()[0]?.model.trim()} × ${cpus().length}`, threads: defaultThreads() };
const log = (line: string) => console.log(line);
const ms = (t0: number) => performance.now() - t0;
const fmt = (x: number, d = 1) => x.toFixed(d);
const work = mkdtempSync(join(tmpdir(), 'whittle-device-check-'));

async function section(name: string, run: () => Promise<unknown>): Promise<void> {
  if (only && !only.has(name)) return;
  log(`\n== ${name} ==`);
  const t0 = performance.now();
  try {
    results[name] = await run();
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    log(`FAILED: ${message}`);
    results[name] = { error: message };
  }
  log(`(${name}: ${fmt(ms(t0) / 1000)} s)`);
}

let gpu: GpuDevice | null = null;
let gpuReason = 'no adapter looked for: --only without the adapters section';

await section('adapters', async () => {
  const status = await computeStatus();
  const devices = await listDevices();
  for (const a of status.adapters) log(`compute adapter: ${a.description || a.device} [${a.backend}, ${a.featureLevel}${a.software ? ', software' : ''}] ${a.ok ? 'ok' : `FAILED: ${a.error}`}`);
  const opened = status.adapter ? await GpuDevice.open() : { reason: status.reason ?? 'no adapter' };
  if ('reason' in opened) { gpuReason = opened.reason; log(`GPU compute: none (${opened.reason})`); } else { gpu = opened; log(`GPU compute: ${gpu.name}; max storage binding ${gpu.limits.maxStorageBufferBindingSize} B`); }
  for (const p of devices.providers.filter((x) => x.runtime === 'onnxruntime')) log(`onnxruntime ${p.name}: ${p.available ? `yes (${p.device ?? ''})` : `no — ${p.reason}`}`);
  return { compute: status, providers: devices.providers, adapters: devices.adapters, adaptersReason: devices.adaptersReason };
});

/** Median of a list. */
const median = (a: number[]) => a.slice().sort((x, y) => x - y)[Math.floor(a.length / 2)]!;

async function timeEp(model: string, ep: 'cpu' | 'webgpu', feeds: Record<string, Float32Array>, dims: number[], runs: number): Promise<{ ep: string; device: string; fallback: string | null; ms: number; out: Float32Array }> {
  const open = await createSession(model, { ep });
  try {
    const input = open.session.inputNames[0]!;
    const feed = { [input]: { dtype: 'float32' as const, dims, data: feeds.x! } };
    let out: Float32Array = new Float32Array(0);
    for (let i = 0; i < 2; i++) out = (Object.values(await runSession(open.session, feed))[0]!.data as Float32Array);
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      await runSession(open.session, feed);
      times.push(ms(t0));
    }
    return { ep: open.ep, device: open.device, fallback: open.fallback, ms: median(times), out };
  } finally {
    await open.session.release();
  }
}

function agreement(a: Float32Array, b: Float32Array, classes: number): { maxAbs: number; relMax: number; top1: number } {
  let maxAbs = 0, scale = 0, same = 0;
  for (let i = 0; i < a.length; i++) { maxAbs = Math.max(maxAbs, Math.abs(a[i]! - b[i]!)); scale = Math.max(scale, Math.abs(a[i]!)); }
  const rows = a.length / classes;
  for (let r = 0; r < rows; r++) {
    let ia = 0, ib = 0;
    for (let c = 1; c < classes; c++) { if (a[r * classes + c]! > a[r * classes + ia]!) ia = c; if (b[r * classes + c]! > b[r * classes + ib]!) ib = c; }
    if (ia === ib) same++;
  }
  return { maxAbs, relMax: maxAbs / scale, top1: same / rows };
}

const resnetSize = small ? 64 : 224;
let resnetPath: string | null = null;

/** The generated ResNet-50-sized model (a narrow short one with --small), written once. */
function resnetFile(): string {
  if (resnetPath) return resnetPath;
  const t0 = performance.now();
  resnetPath = join(work, 'resnet50.onnx');
  writeOnnxFile(resnet50Model(small ? { scale: 0.25, blocks: [1, 1, 1, 1], size: resnetSize } : {}), resnetPath);
  log(`generated ${small ? 'a narrow ResNet' : 'ResNet-50-sized'} model in ${fmt(ms(t0) / 1000)} s`);
  return resnetPath;
}

await section('eval', async () => {
  const models: { name: string; path: string; dims: number[] }[] = [];
  const squeeze = ['.device-data/squeezenet1.0_fp32.onnx', '../shared/fixtures/squeezenet/squeezenet1.0_fp32.onnx'].find(existsSync);
  if (squeeze) models.push({ name: 'SqueezeNet 1.0 (fixture)', path: squeeze, dims: [1, 3, 224, 224] });
  else log('SqueezeNet fixture not found (.device-data/ or ../shared/fixtures/): skipped');
  const resnet = resnetFile();
  const size = resnetSize;
  const batch = small ? 2 : 8;
  models.push({ name: `ResNet-50-sized, random weights, batch ${batch}`, path: resnet, dims: [batch, 3, size, size] });
  const out: unknown[] = [];
  for (const m of models) {
    const n = m.dims.reduce((a, b) => a * b, 1);
    const x = seededGaussian(n, 7);
    const runs = small ? 3 : 20;
    const cpu = await timeEp(m.path, 'cpu', { x }, m.dims, runs);
    const gpuRun = await timeEp(m.path, 'webgpu', { x }, m.dims, runs);
    const onGpu = gpuRun.ep === 'webgpu';
    const agree = agreement(cpu.out, gpuRun.out, cpu.out.length / m.dims[0]!);
    log(`${m.name}: CPU ${fmt(cpu.ms)} ms (${cpu.device}); ${onGpu ? `WebGPU ${fmt(gpuRun.ms)} ms (${gpuRun.device}), ${fmt(cpu.ms / gpuRun.ms, 2)}× CPU; outputs max |Δ| ${agree.maxAbs.toExponential(2)} (${agree.relMax.toExponential(2)} of max), top-1 agreement ${fmt(agree.top1 * 100, 0)} %` : `WebGPU not used: ${gpuRun.fallback}`}`);
    out.push({ model: m.name, dims: m.dims, cpuMs: cpu.ms, gpuMs: onGpu ? gpuRun.ms : null, speedup: onGpu ? cpu.ms / gpuRun.ms : null, agreement: onGpu ? agree : null, gpuDevice: gpuRun.device, fallback: gpuRun.fallback });
  }
  // the CLI's automatic choice, as a user sees it
  try {
    const json = execFileSync(process.execPath, ['bin/whittle.mjs', 'eval', resnet, '--data', `synthetic:${small ? 2 : 16}`, '--ep', 'auto', '--batch', String(batch), '--runs', small ? '2' : '10', '--json', '--no-record'], { encoding: 'utf8', maxBuffer: 1 << 24, env: { ...process.env, WHITTLE_HOME: join(work, 'home') } });
    const doc = JSON.parse(json) as Record<string, unknown>;
    const lat = doc.latency as Record<string, unknown> | undefined;
    log(`whittle eval --ep auto: ep ${String(doc.ep)}, device ${String(doc.device ?? '')}${lat ? `, latency ${JSON.stringify(lat)}` : ''}${doc.fallback ? `, note: ${String(doc.fallback)}` : ''}`);
    out.push({ cli: { ep: doc.ep, device: doc.device, latency: lat, fallback: doc.fallback } });
  } catch (err) {
    log(`whittle eval --ep auto failed: ${String((err as { stderr?: string }).stderr ?? err).trim().split('\n').pop()}`);
  }
  return out;
});

/**
 * A pass on the transformer test bed, on the CPU and then on the GPU: the pass's report, its time
 * (calibration included) and the held-back perplexity of what it wrote.
 */
async function onTestBed(name: string, run: (model: Model, data: Dataset, compute: 'cpu' | 'gpu') => Promise<PassReport>, line: (report: PassReport) => string, more: (report: PassReport) => Record<string, unknown>): Promise<Record<string, unknown>> {
  const bed = loadTestBed();
  const out: Record<string, unknown> = {};
  for (const compute of ['cpu', 'gpu'] as const) {
    if (compute === 'gpu' && !gpu) { log(`GPU: skipped (${gpuReason})`); continue; }
    const model = readOnnxFile(bed.model);
    const data = await openDataRef({ path: bed.calibPath }, inputSpecs(model), { baseDir: process.cwd(), limit: 128, seed: 0 });
    const t0 = performance.now();
    const report = await run(model, data, compute);
    const seconds = ms(t0) / 1000;
    const path = join(work, `transformer-${name}-${compute}.onnx`);
    writeOnnxFile(model, path);
    const ppl = await onnxPerplexity(path, bed.heldout.inputs, bed.heldout.targets, bed.card.spec.context);
    log(`${compute.toUpperCase()}: ${fmt(seconds, 2)} s in all (calibration included), ${line(report)} on ${String(report.details!.compute)}; held-back perplexity ${ppl.perplexity.toFixed(4)} (fp32 ${bed.card.perplexity.onnxruntime.toFixed(4)})`);
    out[compute] = { seconds, perplexity: ppl.perplexity, ...more(report) };
  }
  return out;
}

const gptqLayerSeconds = (report: PassReport) => (report.details!.layers as { seconds: number }[]).reduce((a, l) => a + l.seconds, 0);

await section('gptq-transformer', () => onTestBed('gptq',
  (model, data, compute) => gptqQuantizePass.run(model, { bits: 4, blockSize: 128, data, samples: 128, compute }, createPassContext()),
  (report) => `GPTQ math ${fmt(gptqLayerSeconds(report), 3)} s over ${(report.details!.layers as unknown[]).length} layers`,
  (report) => ({ gptqSeconds: gptqLayerSeconds(report), meanErrorGptq: report.details!.meanErrorGptq, meanErrorRtn: report.details!.meanErrorRtn })));

/**
 * Calibration rows for the big layer: 16 shared factors mixed into K features plus noise, feature
 * scales 1–7 (correlated, unevenly scaled inputs: where GPTQ differs from RTN), generated per chunk.
 */
function makeChunks(K: number, tokens: number, chunk: number): () => Generator<Float32Array> {
  const F = 16;
  const mix = seededGaussian(F * K, 11);
  return function* () {
    const random = seededRandom(12);
    for (let t = 0; t < tokens; t += chunk) {
      const rows = Math.min(chunk, tokens - t);
      const x = new Float32Array(new SharedArrayBuffer(rows * K * 4));
      const z = new Float32Array(F);
      for (let r = 0; r < rows; r++) {
        for (let f = 0; f < F; f++) z[f] = (random() + random() + random() - 1.5) * 2;
        const o = r * K;
        for (let j = 0; j < K; j++) {
          let s = 0.5 * (random() - 0.5);
          for (let f = 0; f < F; f++) s += z[f]! * mix[f * K + j]!;
          x[o + j] = s * (1 + (j % 7));
        }
      }
      yield x;
    }
  };
}

/** The generated layer and its Hessian, kept for the SparseGPT section. */
let bigLayer: { K: number; N: number; tokens: number; w: Float64Array; xtx: Float64Array; h: Float64Array } | null = null;

/** ‖ΔW·X‖²/‖W·X‖² of a layer on sampled output rows, against its float64 H. */
function sampledLayerError(w: Float64Array, changed: ArrayLike<number>, h: Float64Array, N: number, K: number): number {
  const rows = Array.from({ length: 64 }, (_, i) => Math.floor((i * N) / 64));
  let num = 0, den = 0;
  const d = new Float64Array(K), hd = new Float64Array(K), hw = new Float64Array(K);
  for (const r of rows) {
    for (let j = 0; j < K; j++) d[j] = w[r * K + j]! - changed[r * K + j]!;
    hd.fill(0); hw.fill(0);
    for (let i = 0; i < K; i++) { const di = d[i]!, wi = w[r * K + i]!; const hi = i * K; for (let j = 0; j < K; j++) { hd[j] = hd[j]! + di * h[hi + j]!; hw[j] = hw[j]! + wi * h[hi + j]!; } }
    for (let j = 0; j < K; j++) { num += d[j]! * hd[j]!; den += w[r * K + j]! * hw[j]!; }
  }
  return num / den;
}

await section('gptq-layer', async () => {
  const K = small ? 512 : 4096, N = K, tokens = small ? 8192 : 65536, chunk = 2048;
  log(`layer ${N}×${K}, ${tokens.toLocaleString('en-US')} calibration tokens, int4 asymmetric, group 128, block 128; CPU ${defaultThreads()} threads`);
  const w = Float64Array.from(seededGaussian(N * K, 13), (v) => Math.fround(0.02 * v));
  const chunks = makeChunks(K, tokens, chunk);
  const threads = new CpuThreads();
  const acc = sharedArray(Float64Array, K * K);
  let cpuHessian = 0, gpuHessian = 0, gen = 0;
  const gh = gpu ? new GpuHessian(gpu, K) : null;
  let t = performance.now();
  for (const x of chunks()) {
    gen += ms(t);
    t = performance.now();
    await xtxParallel(threads, x, x.length / K, K, acc);
    cpuHessian += ms(t);
    if (gh && gpu) {
      t = performance.now();
      gh.add(x);
      await gpu.finish();
      gpuHessian += ms(t);
    }
    t = performance.now();
  }
  mirrorUpper(acc, K);
  const h = Float64Array.from(acc, (v) => (2 * v) / tokens);
  bigLayer = { K, N, tokens, w, xtx: acc, h };
  log(`generating the calibration rows: ${fmt(gen / 1000, 2)} s (not counted)`);
  log(`Hessian XᵀX: CPU ${fmt(cpuHessian / 1000, 2)} s${gh ? `, GPU ${fmt(gpuHessian / 1000, 3)} s (${fmt(cpuHessian / gpuHessian)}×)` : ''}`);
  const opts = { bits: 4 as const, groupSize: 128, symmetric: false, blockSize: 128 };
  t = performance.now();
  const c = await gptqQuantize(w, N, K, h, { ...opts, threads });
  const cpuGptq = ms(t);
  await threads.close();
  log(`GPTQ: CPU ${fmt(cpuGptq / 1000, 2)} s (factor ${fmt(c.seconds.factor, 2)} s single-threaded, column updates ${fmt(c.seconds.update, 2)} s)`);
  const out: Record<string, unknown> = { K, N, tokens, cpu: { hessian: cpuHessian / 1000, factor: c.seconds.factor, update: c.seconds.update, total: (cpuHessian + cpuGptq) / 1000 } };
  if (gh && gpu) {
    t = performance.now();
    const g = await gptqGpu(gpu, w, N, K, gh, opts);
    const gpuGptq = ms(t);
    gh.destroy();
    let same = 0;
    for (let i = 0; i < c.q.length; i++) if (c.q[i] === g.q[i]) same++;
    // layer error ‖ΔW·X‖²/‖W·X‖² on 64 sampled output rows, both against the CPU's float64 H
    const err = (dq: Float64Array) => sampledLayerError(w, dq, h, N, K);
    const eCpu = err(dequantize(c, 128)), eGpu = err(dequantize(g, 128));
    const cpuTotal = cpuHessian + cpuGptq, gpuTotal = gpuHessian + gpuGptq;
    log(`GPTQ: GPU ${fmt(gpuGptq / 1000, 3)} s (factor ${fmt(g.seconds.factor, 3)} s, column updates ${fmt(g.seconds.update, 3)} s)`);
    log(`total (Hessian + GPTQ): CPU ${fmt(cpuTotal / 1000, 2)} s, GPU ${fmt(gpuTotal / 1000, 3)} s: GPU ${fmt(cpuTotal / gpuTotal)}× faster (GPTQ alone ${fmt(cpuGptq / gpuGptq)}×)`);
    log(`agreement: ${fmt((100 * same) / c.q.length, 2)} % of codes equal; GPTQ loss CPU ${c.lossEstimate.toExponential(4)} GPU ${g.lossEstimate.toExponential(4)}; layer error (64 rows) CPU ${eCpu.toExponential(4)} GPU ${eGpu.toExponential(4)} (relative difference ${(Math.abs(eGpu - eCpu) / eCpu).toExponential(2)})`);
    out.gpu = { hessian: gpuHessian / 1000, factor: g.seconds.factor, update: g.seconds.update, total: gpuTotal / 1000 };
    out.speedup = { total: cpuTotal / gpuTotal, gptq: cpuGptq / gpuGptq, hessian: cpuHessian / gpuHessian };
    out.agreement = { codesEqual: same / c.q.length, lossCpu: c.lossEstimate, lossGpu: g.lossEstimate, errorCpu: eCpu, errorGpu: eGpu };
  } else log(`GPU: skipped (${gpuReason})`);
  return out;
});

await section('sparsegpt-transformer', () => onTestBed('sparsegpt',
  (model, data, compute) => sparseGptPrunePass.run(model, { sparsity: 0.5, data, samples: 128, compute }, createPassContext()),
  () => 'SparseGPT 50 %', () => ({})));

await section('sparsegpt-layer', async () => {
  if (!bigLayer) throw new Error('needs the gptq-layer section (its layer and Hessian)');
  const { K, N, tokens, w, xtx, h } = bigLayer;
  log(`the same ${N}×${K} layer and Hessian (${tokens.toLocaleString('en-US')} tokens), SparseGPT 50 %, block 128; CPU ${defaultThreads()} threads`);
  const stats = { k: K, sqNorm: new Float64Array(K), sum: new Float64Array(K), xtx, rows: tokens };
  const target = { kind: 'unstructured' as const, sparsity: 0.5 };
  const cpuW = w.slice();
  let t = performance.now();
  await sparseGptPruneGroup(cpuW, N, K, K, stats, target, { percdamp: 0.01, blockSize: 128 }, () => {});
  const cpu = ms(t);
  log(`SparseGPT: CPU ${fmt(cpu / 1000, 2)} s (factorization, mask selection, updates)`);
  const out: Record<string, unknown> = { K, N, tokens, cpu: cpu / 1000 };
  if (!gpu) { log(`GPU: skipped (${gpuReason})`); return out; }
  t = performance.now();
  const g = await sparseGptGpu(gpu, w, N, K, h, { target, percdamp: 0.01, blockSize: 128 });
  const onGpu = ms(t);
  let sameMask = 0;
  for (let i = 0; i < cpuW.length; i++) if ((cpuW[i] === 0) === (g.w[i] === 0)) sameMask++;
  const eCpu = sampledLayerError(w, cpuW, h, N, K), eGpu = sampledLayerError(w, g.w, h, N, K);
  log(`SparseGPT: GPU ${fmt(onGpu / 1000, 3)} s (factor ${fmt(g.seconds.factor, 3)} s, selection and updates ${fmt(g.seconds.update, 3)} s): GPU ${fmt(cpu / onGpu)}× faster`);
  log(`agreement: ${fmt((100 * sameMask) / cpuW.length, 3)} % of the mask equal; layer error (64 rows) CPU ${eCpu.toExponential(4)} GPU ${eGpu.toExponential(4)} (relative difference ${(Math.abs(eGpu - eCpu) / eCpu).toExponential(2)})`);
  out.gpu = { total: onGpu / 1000, factor: g.seconds.factor, update: g.seconds.update };
  out.speedup = cpu / onGpu;
  out.agreement = { maskEqual: sameMask / cpuW.length, errorCpu: eCpu, errorGpu: eGpu };
  return out;
});

await section('magnitude', async () => {
  const path = resnetFile();
  const out: Record<string, unknown> = {};
  for (const [scope, sparsity] of [['global', 0.5], ['layer', 0.7]] as const) {
    const run = async (compute: 'cpu' | 'gpu') => {
      const model = readOnnxFile(path);
      const t0 = performance.now();
      const report = await magnitudePrunePass.run(model, { sparsity, scope, compute }, createPassContext());
      const seconds = ms(t0) / 1000;
      const weights = [...model.graph.initializers.values()].map((t) => t.toFloat32());
      return { seconds, weights, parameters: Number(report.details!.parameters) };
    };
    const cpu = await run('cpu');
    if (!gpu) { log(`${scope} ${sparsity * 100} %: CPU ${fmt(cpu.seconds, 3)} s over ${cpu.parameters.toLocaleString('en-US')} weights; GPU: skipped (${gpuReason})`); out[scope] = { cpu: cpu.seconds }; continue; }
    const onGpu = await run('gpu');
    const same = cpu.weights.length === onGpu.weights.length && cpu.weights.every((a, i) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(onGpu.weights[i]!.buffer, onGpu.weights[i]!.byteOffset, onGpu.weights[i]!.byteLength)));
    log(`${scope} ${sparsity * 100} % over ${cpu.parameters.toLocaleString('en-US')} weights: CPU ${fmt(cpu.seconds, 3)} s, GPU ${fmt(onGpu.seconds, 3)} s (${fmt(cpu.seconds / onGpu.seconds, 2)}×; |w| and the masks on the CPU both ways); ${same ? 'the same weights zeroed' : 'DIFFERENT weights zeroed'}`);
    out[scope] = { cpu: cpu.seconds, gpu: onGpu.seconds, speedup: cpu.seconds / onGpu.seconds, identical: same };
  }
  return out;
});

(gpu as GpuDevice | null)?.destroy();
rmSync(work, { recursive: true, force: true });
if (values.json) writeFileSync(values.json, JSON.stringify(results, null, 1) + '\n');
log('\ndevice check done');
process.exit(0);
