import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { ReplyEnvelope } from '../../api/envelope.ts';
import { createEngineLink, type EngineLink, type Notice } from '../../electron/main/engine-link.ts';
import { TaskbarProgress, type TaskbarValue } from '../../electron/main/progress.ts';
import { hostConfigArg } from '../../electron/shared/host-protocol.ts';
import { F, FIXTURES, fixturesPresent, ROOT } from '../lib/paths.ts';
import { E2E_MARKER, isAlive, killQuietly, markedProcesses, onExit, waitFor } from '../lib/processes.ts';
import { ensureElectronBundles } from './bundles.ts';

// The desktop app's engine side, without Electron: main's EngineLink drives the bundled engine host
// (dist/electron/engine-host.js, under Node with host-shim.mjs standing in for the utility process),
// whose jobs run the bundled CLI (dist/cli/whittle.js). Runs wherever Node does.

let home: string;
let link: EngineLink;
const hosts: ChildProcess[] = [];
const pushes: { event: string; payload: unknown }[] = [];
const notices: Notice[] = [];
const taskbar = new TaskbarProgress();
const bar: TaskbarValue[] = [];
let seq = 0;

async function call(method: string, params: unknown = {}): Promise<unknown> {
  const reply = await link.call({ id: ++seq, method, params });
  if (!reply.ok) throw new Error(`${method}: ${reply.error.code} ${reply.error.message}`);
  return reply.result;
}

function jobState(jobId: string, status: string) {
  return pushes.find((p) => p.event === 'job.state' && (p.payload as { jobId: string; status: string }).jobId === jobId && (p.payload as { status: string }).status === status);
}

before(() => {
  ensureElectronBundles();
  home = mkdtempSync(join(tmpdir(), 'whittle-desktop-host-'));
  onExit(() => hosts.forEach((h) => h.pid && killQuietly(h.pid)));
  link = createEngineLink({
    spawn(events) {
      const child = fork(join(ROOT, 'e2e/desktop/host-shim.mjs'), [
        join(ROOT, 'dist/electron/engine-host.js'),
        hostConfigArg({ jobCommand: [process.execPath, join(ROOT, 'dist/cli/whittle.js')], examplesRoot: FIXTURES }),
      ], {
        cwd: ROOT,
        execArgv: [],
        env: { ...process.env, WHITTLE_HOME: home, WHITTLE_E2E: E2E_MARKER },
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      hosts.push(child);
      child.on('message', (m) => events.message(m));
      child.on('exit', (code) => events.exit(code));
      return { post: (m) => void child.send(m), kill: () => void child.kill('SIGKILL') };
    },
    onPush(push) {
      pushes.push(push);
      const v = taskbar.push(push.event, push.payload);
      if (v) bar.push(v);
    },
    onNotice: (n) => void notices.push(n),
    restartDelayMs: () => 100,
  });
});

after(async () => {
  await link?.close();
  for (const h of hosts) assert.ok(!h.pid || !isAlive(h.pid), `host ${h.pid} has exited`);
  await waitFor('job processes to exit', () => markedProcesses(E2E_MARKER).length === 0, 15_000).catch(() => {});
  assert.deepEqual(markedProcesses(E2E_MARKER), [], 'nothing this file started outlives it');
  rmSync(home, { recursive: true, force: true });
});

test('the bundled engine host answers in electron mode with the store in WHITTLE_HOME', { timeout: 60_000 }, async () => {
  const info = (await call('app.info')) as { mode: string; home: string; version: string };
  assert.equal(info.mode, 'electron');
  assert.equal(info.home, home);
  assert.match(info.version, /^\d+\.\d+\.\d+/);
  assert.ok(existsSync(join(home, 'whittle.db')));
});

test('examples, open and inspect work from the bundle (onnx.proto found beside it)', { skip: !fixturesPresent() && 'fixtures absent', timeout: 60_000 }, async () => {
  const examples = (await call('models.examples')) as { id: string; available: boolean; path: string }[];
  const mnist = examples.find((e) => e.id === 'mnist');
  assert.ok(mnist?.available, 'the MNIST example is available');
  const opened = (await call('models.open', { path: mnist.path })) as { path: string; format: string };
  assert.equal(opened.format, 'onnx');
  const report = (await call('models.inspect', { path: F.mnist })) as { parameters: number; layers: unknown[] };
  assert.equal(report.parameters, 5994);
  assert.equal(report.layers.length, 3);
  const recent = (await call('models.recent')) as { path: string }[];
  assert.equal(recent[0]?.path, opened.path);
});

test('an eval job runs the bundled CLI, reports progress, records a run; the taskbar bar follows it', { skip: !fixturesPresent() && 'fixtures absent', timeout: 120_000 }, async () => {
  const { jobId } = (await call('jobs.start', { spec: { kind: 'eval', model: F.mnist, data: { path: F.mnistImages, preprocess: 'mnist', limit: 300 } } })) as { jobId: string };
  const done = await waitFor('the eval job to finish', () => jobState(jobId, 'succeeded') ?? jobState(jobId, 'failed'), 90_000, 100);
  const job = done.payload as { status: string; runId: string | null; error: unknown };
  assert.equal(job.status, 'succeeded', `job: ${JSON.stringify(job.error)}`);
  assert.ok(job.runId);
  const run = (await call('experiments.get', { runId: job.runId })) as { status: string; metrics: Record<string, number>; environment: { versions: Record<string, string> } };
  assert.equal(run.status, 'succeeded');
  assert.equal(run.metrics['accuracy.top1'] !== undefined, true, `metrics: ${Object.keys(run.metrics).join(', ')}`);
  assert.equal(run.environment.versions.whittle, (await call('app.info') as { version: string }).version, 'the bundle knows its version (dist/package.json)');
  assert.ok(bar.some((v) => v.mode !== 'none'), 'the taskbar showed the running job');
  assert.deepEqual(bar.at(-1), { progress: -1, mode: 'none' }, 'and no bar once it finished');
});

test('a host that dies fails its in-flight call, is restarted, and serves again', { timeout: 90_000 }, async () => {
  const first = hosts.at(-1)!;
  // Short: a job process is not the host's to outlive it, but if it does, it ends on its own soon.
  const { jobId } = (await call('jobs.start', { spec: { kind: 'sleep', seconds: 4 } })) as { jobId: string };
  const running = await waitFor('the sleep job to run', () => pushes.find((p) => p.event === 'job.state' && (p.payload as { jobId: string; pid: number | null }).jobId === jobId && (p.payload as { pid: number | null }).pid), 30_000, 50);
  const jobPid = (running.payload as { pid: number }).pid;
  const inFlight = link.call({ id: ++seq, method: 'jobs.list', params: {} });
  first.kill('SIGKILL');
  const reply = (await inFlight) as ReplyEnvelope;
  // jobs.list may have been answered before the kill landed; when it was not, it fails clearly.
  if (!reply.ok) assert.match(reply.error.message, /engine process stopped while handling this call/);
  await waitFor('a new host', () => hosts.length === 2 && link.state() === 'ready', 30_000, 50);
  if (isAlive(jobPid)) console.log(`  note: job process ${jobPid} outlived its killed engine host (it finishes on its own)`);
  assert.ok(notices.some((n) => n.level === 'error' && /stopped unexpectedly/.test(n.message)), 'the user is told');
  const info = (await call('app.info')) as { mode: string };
  assert.equal(info.mode, 'electron');
  assert.deepEqual(await call('jobs.list'), [], "the new engine has none of the old one's jobs");
});
