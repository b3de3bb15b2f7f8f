import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ReplyEnvelope } from '../../api/envelope.ts';
import type { MethodInput, MethodName, MethodResult } from '../../api/methods.ts';
import { Recipe } from '../../api/recipe.ts';
import type { JobInfo, JobProgress } from '../../api/schemas.ts';
import { openStore } from '../store/index.ts';
import { fixture } from '../testing/fixtures.ts';
import { createEngine, type Engine, type EnginePush } from './engine.ts';

const MNIST = fixture('mnist', 'mnist.onnx');
/** The engine records models by their real path (the fixtures folder may be a symlink). */
const MNIST_REAL = realpathSync(MNIST);
const ENDED = new Set(['succeeded', 'failed', 'cancelled']);

/** Calls through the dispatcher, as a transport would, and unwraps the reply. */
async function call<M extends MethodName>(engine: Engine, method: M, params: MethodInput<M>): Promise<MethodResult<M>> {
  const reply = await engine.dispatch({ id: 1, method, params }, { transport: 'test' });
  if (!reply.ok) throw Object.assign(new Error(reply.error.message), { code: reply.error.code });
  return reply.result as MethodResult<M>;
}

function rawCall(engine: Engine, method: string, params: unknown): Promise<ReplyEnvelope> {
  return engine.dispatch({ id: 7, method, params }, { transport: 'test' });
}

/** Resolves with the first job state that satisfies `ready` (checked against the current state first). */
function waitForJob(engine: Engine, jobId: string, ready: (job: JobInfo) => boolean, timeoutMs = 60_000): Promise<JobInfo> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { stop(); reject(new Error(`job ${jobId}: timed out waiting`)); }, timeoutMs);
    const stop = engine.onPush((push) => {
      if (push.event !== 'job.state') return;
      const job = push.payload as JobInfo;
      if (job.jobId === jobId && ready(job)) { clearTimeout(timer); stop(); resolve(job); }
    });
    void call(engine, 'jobs.get', { jobId }).then((job) => {
      if (ready(job)) { clearTimeout(timer); stop(); resolve(job); }
    });
  });
}

const ended = (job: JobInfo) => ENDED.has(job.status);

describe('engine (Electron mode): dispatcher, models, jobs as processes', () => {
  let engine: Engine;
  let home: string;
  const pushes: EnginePush[] = [];

  before(async () => {
    home = mkdtempSync(join(tmpdir(), 'whittle-engine-'));
    // sleep jobs record a run here, so the tests can see what a killed job leaves in the store
    engine = createEngine({ mode: 'electron', home, jobEnv: { WHITTLE_SLEEP_RECORD: '1' }, killGraceMs: 3000 });
    engine.onPush((p) => pushes.push(p));
  });
  after(() => engine.close());

  test('app.info, and bad requests come back as BAD_USAGE without running anything', async () => {
    const info = await call(engine, 'app.info', {});
    assert.equal(info.mode, 'electron');
    assert.equal(info.home, home);
    assert.deepEqual(info.workspace, []);
    const unknown = await rawCall(engine, 'models.destroy', {});
    assert.equal(unknown.ok, false);
    assert.equal(!unknown.ok && unknown.error.code, 'BAD_USAGE');
    const badSpec = await rawCall(engine, 'jobs.start', { spec: { kind: 'sleep', seconds: -1 } });
    assert.equal(!badSpec.ok && badSpec.error.code, 'BAD_USAGE');
    assert.match(!badSpec.ok ? badSpec.error.message : '', /jobs\.start: spec\.seconds/);
    const extra = await rawCall(engine, 'models.open', { path: MNIST, evil: true });
    assert.equal(!extra.ok && extra.error.code, 'BAD_USAGE');
    const missing = await rawCall(engine, 'models.open', { path: join(home, 'nope.onnx') });
    assert.equal(!missing.ok && missing.error.code, 'NOT_FOUND');
  });

  test('models.open remembers the model; inspect and histogram read it', async () => {
    const ref = await call(engine, 'models.open', { path: MNIST });
    assert.equal(ref.format, 'onnx');
    assert.equal(ref.bytes, 26454);
    assert.equal(ref.name, 'mnist.onnx');
    assert.deepEqual((await call(engine, 'models.recent', {})).map((m) => m.path), [MNIST_REAL]);
    const report = await call(engine, 'models.inspect', { path: MNIST });
    assert.ok(report.parameters > 5000 && report.layers.length >= 3);
    const layer = report.layers.find((l) => l.op === 'MatMul')!;
    const h = await call(engine, 'models.histogram', { path: MNIST, layer: layer.name, bins: 16 });
    assert.equal(h.counts.length, 16);
    assert.equal(h.edges.length, 17);
    assert.equal(h.total, layer.parameters);
    assert.equal(h.counts.reduce((a, b) => a + b, 0), layer.parameters); // every value is finite
    assert.equal(h.edges[0], h.min);
    assert.equal(h.edges[16], h.max);
    const notThere = await rawCall(engine, 'models.histogram', { path: MNIST, layer: 'no-such-layer' });
    assert.equal(!notThere.ok && notThere.error.code, 'NOT_FOUND');
    // TF.js: the weights are uint8-quantized; the histogram is of their dequantized values
    const tfjs = await call(engine, 'models.open', { path: fixture('tfjs-nsfwjs-mobilenet-v2', 'model.json') });
    assert.equal(tfjs.format, 'tfjs');
    assert.equal(tfjs.name, 'tfjs-nsfwjs-mobilenet-v2/model.json');
    assert.ok(tfjs.bytes > 1_000_000, 'model.json and its shard');
    const tfjsReport = await call(engine, 'models.inspect', { path: tfjs.path });
    assert.equal(tfjsReport.format, 'tfjs');
    const kernel = tfjsReport.layers.find((l) => l.shape.length === 4)!;
    const th = await call(engine, 'models.histogram', { path: tfjs.path, layer: kernel.weight, bins: 8 });
    assert.equal(th.total, kernel.parameters);
    assert.ok(th.min < 0 && th.max > 0);
    assert.deepEqual((await call(engine, 'models.recent', {})).map((m) => m.format), ['tfjs', 'onnx']);
    const examples = await call(engine, 'models.examples', {});
    assert.ok(examples.find((e) => e.id === 'mnist')?.available);
    assert.equal(examples.find((e) => e.id === 'mnist')?.data?.preprocess, 'mnist');
    assert.equal(examples.find((e) => e.id === 'mnist')?.calibration, null, 'MNIST calibrates on its evaluation data');
    // the project's own transformer: held-back text to evaluate, a training split to calibrate on
    const lm = examples.find((e) => e.id === 'char-transformer')!;
    assert.ok(lm.available, 'the transformer test bed ships in the checkout');
    assert.match(lm.path, /native-models\/zoo\/transformer\/char-transformer\.onnx$/);
    assert.match(lm.data!.path, /heldout\.npy$/);
    assert.match(lm.calibration!.path, /calib\.npy$/);
  });

  test('a quantize job runs as a process: progress, a recorded run with its artifact, an export', async () => {
    const from = pushes.length;
    const { jobId } = await call(engine, 'jobs.start', { spec: { kind: 'quantize', model: MNIST, step: { method: 'dynamic' } } });
    const job = await waitForJob(engine, jobId, ended);
    assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
    assert.equal(job.title, 'quantize dynamic · mnist.onnx');
    assert.ok(job.runId);
    assert.equal((job.result as { runId: string }).runId, job.runId);
    const progress = pushes.slice(from).filter((p) => p.event === 'job.progress').map((p) => p.payload as JobProgress);
    assert.ok(progress.length > 0, 'no progress events');
    assert.ok(progress.every((p) => p.jobId === jobId && p.total >= p.done));
    assert.ok(pushes.slice(from).some((p) => p.event === 'experiments.changed'));

    const runs = await call(engine, 'experiments.list', { text: 'mnist' });
    const run = runs.find((r) => r.id === job.runId);
    assert.equal(run?.status, 'succeeded');
    assert.ok(run!.metrics.bytesAfter! < run!.metrics.bytesBefore!);
    const detail = await call(engine, 'experiments.get', { runId: job.runId! });
    assert.deepEqual(detail.artifacts.map((a) => a.name), ['mnist.dynamic.onnx']);
    assert.ok(existsSync(detail.artifacts[0]!.path));
    assert.ok(!existsSync(join(home, 'jobs', jobId)), 'the job folder was left behind');
    assert.deepEqual(await call(engine, 'experiments.list', { text: 'no-such-model-anywhere' }), []);

    const exported = await call(engine, 'artifacts.export', { runId: job.runId! });
    assert.equal(exported.folder, join(home, 'exports', job.runId!));
    assert.deepEqual(exported.files.map((f) => f.name).sort(), ['mnist.dynamic.onnx', 'recipe.json', 'report.html', 'report.json', 'report.md']);
    const recipe = Recipe.parse(JSON.parse(readFileSync(join(exported.folder, 'recipe.json'), 'utf8')));
    assert.equal(recipe.model, MNIST_REAL);
    assert.deepEqual(recipe.steps.map((s) => ('quantize' in s ? s.quantize.method : null)), ['dynamic']);
    const html = readFileSync(join(exported.folder, 'report.html'), 'utf8');
    assert.ok(html.includes(job.runId!) && !/<(script|link)\b|src=/.test(html), 'report.html must be self-contained');

    const table = await call(engine, 'experiments.exportTable', { runIds: [job.runId!], format: 'csv' });
    assert.equal(table.mimeType, 'text/csv');
    assert.match(table.content.split('\r\n')[1]!, new RegExp(`^${job.runId},quantize,succeeded`));
  });

  test('a demo job runs `whittle demo` and records a run the app recognises by its command', async () => {
    const { jobId } = await call(engine, 'jobs.start', { spec: { kind: 'demo', demo: 'lottery', seeds: 1, rounds: 1, epochs: 1 } });
    const job = await waitForJob(engine, jobId, ended);
    assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
    assert.equal(job.kind, 'demo');
    assert.equal(job.title, 'demo lottery ticket on digits (--seeds 1 --rounds 1 --epochs 1)');
    const result = job.result as { experiment: string; rows: { round: number; ticketBySeed: number[] }[] };
    assert.equal(result.experiment, 'lottery');
    assert.deepEqual(result.rows.map((r) => [r.round, r.ticketBySeed.length]), [[0, 1], [1, 1]]);
    const detail = await call(engine, 'experiments.get', { runId: job.runId! });
    assert.deepEqual(detail.command, ['demo', 'lottery', '--seeds', '1', '--rounds', '1', '--epochs', '1', '--json']);
    assert.equal(detail.status, 'succeeded');
    assert.equal(detail.kind, 'demo', 'recorded as a demo run (store schema 2), not as an eval');
    assert.equal((detail.result as { experiment?: string }).experiment, 'lottery');
  });

  test('a cancelled job stops, and its run is recorded cancelled; a running run cannot be deleted', async () => {
    const { jobId } = await call(engine, 'jobs.start', { spec: { kind: 'sleep', seconds: 60 } });
    const running = await waitForJob(engine, jobId, (j) => j.runId !== null);
    assert.equal(running.status, 'running');
    assert.ok(running.pid);
    // the sleep reports every 100 ms; the engine passes on at most 10 a second, with an ETA once there is a rate
    const progress: { at: number; p: JobProgress }[] = [];
    const stop = engine.onPush((push) => { if (push.event === 'job.progress') progress.push({ at: Date.now(), p: push.payload as JobProgress }); });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    stop();
    const mine = progress.filter((e) => e.p.jobId === jobId);
    assert.ok(mine.length >= 3, `only ${mine.length} progress events in 1.5 s`);
    assert.ok(mine.length <= 17, `${mine.length} progress events in 1.5 s`);
    const gaps = mine.slice(1).map((e, i) => e.at - mine[i]!.at);
    assert.ok(gaps.every((g) => g >= 80), `progress events ${gaps.join(',')} ms apart`);
    const last = mine.at(-1)!.p;
    assert.equal(last.phase, 'sleep');
    assert.equal(last.total, 600);
    assert.ok(last.etaS !== null && last.etaS > 30 && last.etaS < 200, `ETA ${last.etaS}`);
    const refused = await rawCall(engine, 'experiments.delete', { runId: running.runId! });
    assert.equal(!refused.ok && refused.error.code, 'BAD_USAGE');
    const t0 = Date.now();
    assert.deepEqual(await call(engine, 'jobs.cancel', { jobId }), { cancelled: true });
    const job = await waitForJob(engine, jobId, ended);
    assert.equal(job.status, 'cancelled');
    assert.equal(job.error?.code, 'CANCELLED');
    assert.ok(Date.now() - t0 < 10_000);
    assert.equal((await call(engine, 'experiments.get', { runId: running.runId! })).status, 'cancelled');
    assert.deepEqual(await call(engine, 'jobs.cancel', { jobId }), { cancelled: false });
    // finished now: it can go
    assert.deepEqual(await call(engine, 'experiments.delete', { runId: running.runId! }), { ok: true });
    const gone = await rawCall(engine, 'experiments.get', { runId: running.runId! });
    assert.equal(!gone.ok && gone.error.code, 'NOT_FOUND');
  });

  test('concurrency 1 queues; a job killed with SIGKILL fails naming the signal, its run is closed, and the next job runs', async () => {
    assert.equal((await call(engine, 'settings.set', { concurrency: 1 })).concurrency, 1);
    const first = await call(engine, 'jobs.start', { spec: { kind: 'sleep', seconds: 60 } });
    const second = await call(engine, 'jobs.start', { spec: { kind: 'sleep', seconds: 0.3 } });
    const victim = await waitForJob(engine, first.jobId, (j) => j.runId !== null);
    assert.equal((await call(engine, 'jobs.get', { jobId: second.jobId })).status, 'queued');
    process.kill(victim.pid!, 'SIGKILL');
    const killed = await waitForJob(engine, first.jobId, ended);
    assert.equal(killed.status, 'failed');
    assert.equal(killed.error?.code, 'RUNTIME');
    assert.match(killed.error!.message, /SIGKILL/);
    const run = await call(engine, 'experiments.get', { runId: victim.runId! });
    assert.equal(run.status, 'failed');
    assert.match(run.error ?? '', /SIGKILL/);
    assert.deepEqual(await call(engine, 'experiments.list', { status: 'running' }), []);
    const next = await waitForJob(engine, second.jobId, ended);
    assert.equal(next.status, 'succeeded', JSON.stringify(next.error));
    // newest first
    assert.deepEqual((await call(engine, 'jobs.list', {})).slice(0, 2).map((j) => j.jobId), [second.jobId, first.jobId]);
  });

  test('a job that crashes fails with the reason; the engine carries on', async () => {
    await call(engine, 'settings.set', { concurrency: 2 });
    const thrown = await call(engine, 'jobs.start', { spec: { kind: 'sleep', seconds: 0.4, crash: 'throw' } });
    const exited = await call(engine, 'jobs.start', { spec: { kind: 'sleep', seconds: 0.4, crash: 'exit' } });
    const a = await waitForJob(engine, thrown.jobId, ended);
    const b = await waitForJob(engine, exited.jobId, ended);
    assert.equal(a.status, 'failed');
    assert.equal(a.error?.code, 'INTERNAL');
    assert.match(a.error!.message, /crashing half way/);
    assert.equal(b.status, 'failed');
    assert.equal(b.error?.code, 'RUNTIME');
    assert.match(b.error!.message, /exited with code 70: .*--crash exit/);
    assert.ok(b.logs.some((l) => l.level === 'error'));
    assert.deepEqual(await call(engine, 'experiments.list', { status: 'running' }), []);
    assert.deepEqual(JSON.parse(readFileSync(join(home, 'settings.json'), 'utf8')), { ep: 'cpu', concurrency: 2, theme: 'system' });
    assert.deepEqual(readdirSync(join(home, 'jobs')), []);
  });
});

describe('engine (server mode): paths outside the readable folders are refused', () => {
  let engine: Engine;
  let workspace: string;
  let runId: string;
  let home: string;
  before(async () => {
    home = mkdtempSync(join(tmpdir(), 'whittle-engine-server-'));
    workspace = join(home, 'workspace');
    mkdirSync(workspace);
    writeFileSync(join(workspace, 'notes.txt'), 'not a model');
    mkdirSync(join(home, 'private'));
    writeFileSync(join(home, 'private', 'secret.onnx'), 'secret');
    symlinkSync(join(home, 'private'), join(workspace, 'escape'));
    const store = openStore({ home: join(home, 'store') });
    const run = await store.startRun({ kind: 'eval', command: ['eval', MNIST], inputs: [{ role: 'model', path: MNIST }] });
    run.succeed({ accuracy: { top1: 0.989 } });
    runId = run.id;
    store.close();
    engine = createEngine({ mode: 'browser', home: join(home, 'store'), readableRoots: [workspace], uploadUrl: '/upload', fileUrl: (p) => `/files?path=${encodeURIComponent(p)}` });
  });
  after(async () => {
    await engine.close();
    rmSync(home, { recursive: true, force: true });
  });

  test('models, data in job specs and links that leave the folders', async () => {
    const info = await call(engine, 'app.info', {});
    assert.deepEqual(info.workspace, [workspace]);
    assert.equal(info.uploadUrl, '/upload');
    for (const path of ['/etc/passwd', join(workspace, 'escape', 'secret.onnx'), join(workspace, '..', 'private', 'secret.onnx'), join(workspace, '..', 'store', 'whittle.db')]) {
      const reply = await rawCall(engine, 'models.open', { path });
      assert.equal(!reply.ok && reply.error.code, 'BAD_INPUT', path);
      assert.match(!reply.ok ? reply.error.message : '', /outside the folders this server may read/);
    }
    // the examples the engine offers are readable, the project's own (native-models/zoo) too
    assert.equal((await call(engine, 'models.open', { path: MNIST })).format, 'onnx');
    const lm = (await call(engine, 'models.examples', {})).find((e) => e.id === 'char-transformer')!;
    assert.equal((await call(engine, 'models.open', { path: lm.path })).format, 'onnx');
    const job = await rawCall(engine, 'jobs.start', { spec: { kind: 'eval', model: MNIST, data: { path: '/etc/hostname' } } });
    assert.equal(!job.ok && job.error.code, 'BAD_INPUT');
    const demo = await rawCall(engine, 'jobs.start', { spec: { kind: 'demo', demo: 'lottery', data: '/etc' } });
    assert.equal(!demo.ok && demo.error.code, 'BAD_INPUT');
    const exportTo = await rawCall(engine, 'artifacts.export', { runId, destination: '/tmp/elsewhere' });
    assert.equal(!exportTo.ok && exportTo.error.code, 'BAD_INPUT');
    const exported = await call(engine, 'artifacts.export', { runId, destination: join(workspace, 'out', 'run') });
    assert.deepEqual(exported.files.map((f) => f.name).sort(), ['report.html', 'report.json', 'report.md']); // an eval redoes no recipe
    assert.ok(exported.files.every((f) => f.url === `/files?path=${encodeURIComponent(f.path)}`));
    assert.deepEqual(await call(engine, 'jobs.list', {}), []);
  });
});
