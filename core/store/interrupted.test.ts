import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { REPO_ROOT } from '../testing/fixtures.ts';
import { openStore } from './store.ts';
import { tempHome } from './test-home.ts';

/** A child process that starts a run, prints its id, then hangs until killed. */
function startChildRun(home: string) {
  const storeUrl = pathToFileURL(join(REPO_ROOT, 'core', 'store', 'store.ts')).href;
  const code = `
    import { openStore } from ${JSON.stringify(storeUrl)};
    const store = openStore({ home: process.env.WHITTLE_HOME });
    const run = await store.startRun({ kind: 'quantize', command: ['quantize', 'big.onnx'] });
    run.recordMetrics({ progress: { done: 3 } });
    process.stdout.write(run.id + '\\n');
    setInterval(() => {}, 1000);
  `;
  // cwd is the repository so --import tsx resolves from its node_modules.
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    cwd: REPO_ROOT, env: { ...process.env, WHITTLE_HOME: home }, stdio: ['ignore', 'pipe', 'inherit'],
  });
  const firstLine = new Promise<string>((resolveLine, reject) => {
    createInterface({ input: child.stdout }).once('line', resolveLine);
    child.once('exit', (code) => reject(new Error(`child exited (${code}) before starting its run`)));
  });
  return { child, firstLine };
}

test('a run whose process is killed with SIGKILL is marked interrupted at the next open', async () => {
  const home = await tempHome('interrupted');
  const { child, firstLine } = startChildRun(home);
  try {
    const id = await firstLine;

    // While the child lives, its run is left alone.
    let store = openStore({ home });
    assert.equal(store.getRun(id).status, 'running');
    assert.equal(store.getRun(id).pid, child.pid);
    store.close();

    child.kill('SIGKILL');
    await once(child, 'exit');

    store = openStore({ home });
    try {
      const run = store.getRun(id);
      assert.equal(run.status, 'interrupted');
      assert.match(run.error!, new RegExp(`interrupted: the process running it \\(pid ${child.pid} `));
      assert.ok(run.finishedAt !== null);
      assert.equal(run.metrics['progress.done'], 3, 'what it recorded before dying is kept');
    } finally {
      store.close();
    }
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
});

test('runs from another host, and live runs of this process, are not marked interrupted', async () => {
  const home = await tempHome('interrupted');
  const store = openStore({ home });
  const mine = await store.startRun({ kind: 'eval', command: [] });
  const elsewhere = await store.startRun({ kind: 'eval', command: [] });
  store.close();
  const db = new Database(join(home, 'whittle.db'));
  db.prepare(`UPDATE runs SET hostname = 'some-other-machine', pid = 999999 WHERE id = ?`).run(elsewhere.id);
  db.close();

  const again = openStore({ home });
  try {
    assert.deepEqual(again.markInterruptedRuns(), []);
    assert.equal(again.getRun(mine.id).status, 'running');
    assert.equal(again.getRun(elsewhere.id).status, 'running');
  } finally {
    again.close();
  }
});

test('a reused pid (same number, different process start) does not keep a dead run alive', { skip: process.platform !== 'linux' && 'needs /proc' }, async () => {
  const home = await tempHome('interrupted');
  const store = openStore({ home });
  try {
    const run = await store.startRun({ kind: 'eval', command: [] });
    const db = new Database(join(home, 'whittle.db'));
    // Our own pid is alive, but the recorded start time says the run belonged to an earlier process.
    db.prepare(`UPDATE runs SET process_started = '1' WHERE id = ?`).run(run.id);
    db.close();
    assert.deepEqual(store.markInterruptedRuns(), [run.id]);
    assert.equal(store.getRun(run.id).status, 'interrupted');
  } finally {
    store.close();
  }
});
