import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { WhittleError } from '../../api/errors.ts';
import { LATEST_VERSION, MIGRATIONS, migrate } from './migrations.ts';
import { openStore } from './store.ts';
import { tempHome } from './test-home.ts';

test('opening an empty folder creates whittle.db (WAL, migrated) and artifacts/', async () => {
  const home = await tempHome();
  const store = openStore({ home });
  store.close();
  assert.ok(existsSync(join(home, 'artifacts')));
  const db = new Database(join(home, 'whittle.db'), { readonly: true });
  try {
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    const tables = (db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`).all() as { name: string }[]).map((r) => r.name);
    for (const t of ['artifacts', 'experiments', 'file_hashes', 'layer_metrics', 'metrics', 'models', 'run_inputs', 'runs', 'schema_migrations']) {
      assert.ok(tables.includes(t), `table ${t} missing from ${tables.join(',')}`);
    }
    assert.equal((db.prepare('SELECT max(version) AS v FROM schema_migrations').get() as { v: number }).v, LATEST_VERSION);
  } finally {
    db.close();
  }
  // Opening again applies nothing twice.
  openStore({ home }).close();
});

test('each migration step commits or rolls back as a whole', async () => {
  const home = await tempHome();
  const file = join(home, 'steps.db');
  const db = new Database(file);
  const steps = [
    { version: 1, name: 'one', up: (d: Database.Database) => d.exec('CREATE TABLE a (x)') },
    { version: 2, name: 'two', up: (d: Database.Database) => { d.exec('CREATE TABLE b (x)'); throw new Error('step two broke'); } },
  ];
  assert.throws(() => migrate(db, file, steps), /step two broke/);
  const names = (db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).all() as { name: string }[]).map((r) => r.name);
  assert.ok(names.includes('a'));
  assert.ok(!names.includes('b'), 'the failed step left a table behind');
  assert.equal(migrate(db, file, steps.slice(0, 1)), 1);
  db.close();
});

test('version 2 (run kind demo): a version-1 store keeps every run and what hangs off it; demo runs become kind demo', async () => {
  const home = await tempHome();
  const file = join(home, 'whittle.db');
  const db = new Database(file);
  db.pragma('foreign_keys = ON');
  migrate(db, file, MIGRATIONS.slice(0, 1));
  const insertRun = db.prepare(`INSERT INTO runs (id, kind, command_json, status, created_at, environment_json) VALUES (?, ?, ?, 'succeeded', '2026-01-01T00:00:00Z', '{}')`);
  insertRun.run('r-demo', 'eval', JSON.stringify(['demo', 'lottery', '--seeds', '1']));
  insertRun.run('r-eval', 'eval', JSON.stringify(['eval', 'm.onnx']));
  insertRun.run('r-quant', 'quantize', JSON.stringify(['quantize', 'm.onnx', '-o', 'q.onnx']));
  assert.throws(() => insertRun.run('r-new', 'demo', '["demo"]'), /CHECK constraint/);
  for (const id of ['r-demo', 'r-eval', 'r-quant']) {
    db.prepare(`INSERT INTO metrics VALUES (?, 'accuracy.top1', 0.5)`).run(id);
    db.prepare(`INSERT INTO layer_metrics VALUES (?, 'conv1', 'sqnrDb', 20)`).run(id);
    db.prepare(`INSERT INTO artifacts VALUES (?, 'model.onnx', ?, 'abc', 1, '2026-01-01T00:00:00Z')`).run(id, `artifacts/${id}/model.onnx`);
    db.prepare(`INSERT INTO run_inputs VALUES (?, 0, 'model', 'm.onnx', NULL, NULL)`).run(id);
  }

  assert.equal(migrate(db, file), LATEST_VERSION);
  const kinds = Object.fromEntries((db.prepare('SELECT id, kind FROM runs').all() as { id: string; kind: string }[]).map((r) => [r.id, r.kind]));
  assert.deepEqual(kinds, { 'r-demo': 'demo', 'r-eval': 'eval', 'r-quant': 'quantize' });
  for (const table of ['metrics', 'layer_metrics', 'artifacts', 'run_inputs']) {
    assert.equal((db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n, 3, `${table} lost rows`);
  }
  assert.equal(db.pragma('foreign_keys', { simple: true }), 1, 'foreign keys are on again');
  // the rebuilt table keeps its indexes, its constraints and its place in the cascade
  const indexes = (db.prepare(`SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'runs' AND name NOT LIKE 'sqlite_%'`).all() as { name: string }[]).map((r) => r.name).sort();
  assert.deepEqual(indexes, ['runs_by_created', 'runs_by_status']);
  insertRun.run('r-new', 'demo', '["demo","game-of-life"]');
  assert.throws(() => insertRun.run('r-bad', 'train', '["x"]'), /CHECK constraint/);
  db.prepare(`DELETE FROM runs WHERE id = 'r-demo'`).run();
  assert.equal((db.prepare(`SELECT count(*) AS n FROM metrics WHERE run_id = 'r-demo'`).get() as { n: number }).n, 0, 'deleting a run still deletes its metrics');
  db.close();
});

test('a store written by a newer Whittle is refused with a clear error', async () => {
  const home = await tempHome();
  openStore({ home }).close();
  const db = new Database(join(home, 'whittle.db'));
  db.prepare(`INSERT INTO schema_migrations VALUES (?, 'from the future', '2100-01-01')`).run(LATEST_VERSION + 5);
  db.close();
  assert.throws(() => openStore({ home }), (err: unknown) =>
    err instanceof WhittleError && err.code === 'UNSUPPORTED' && err.message.includes('whittle.db') && /newer Whittle/.test(err.message));
});

test('a run round-trips: inputs hashed, metrics flattened, layer metrics, artifacts, result', async () => {
  const home = await tempHome();
  const model = join(home, 'tiny.onnx');
  await writeFile(model, 'not really onnx');
  const store = openStore({ home });
  try {
    const run = await store.startRun({
      kind: 'eval', command: ['eval', model, '--data', 'synthetic:8'], environment: { ep: 'cpu', seed: 7 },
      inputs: [{ role: 'model', path: model }, { role: 'data', path: 'synthetic:8' }], experimentName: 'baseline',
    });
    assert.equal(store.getRun(run.id).status, 'running');
    const result = { accuracy: { top1: 0.75, top5: 0.9, n: 8 }, agreement: null, synthetic: true, model: model, layers: [{ x: 1 }] };
    assert.deepEqual(run.recordMetrics(result), { 'accuracy.top1': 0.75, 'accuracy.top5': 0.9, 'accuracy.n': 8, synthetic: 1 });
    run.recordLayerMetrics([{ layer: 'conv1', metric: 'sqnrDb', value: 31.5 }, { layer: 'fc', metric: 'sqnrDb', value: 12 }]);
    const art = await run.writeArtifact('report.json', (tmp) => writeFile(tmp, '{"ok":true}'));
    run.succeed(result);

    const got = store.getRun(run.id);
    assert.equal(got.status, 'succeeded');
    assert.equal(got.kind, 'eval');
    assert.equal(got.experimentName, 'baseline');
    assert.deepEqual(got.command, ['eval', model, '--data', 'synthetic:8']);
    assert.equal(got.model, model);
    assert.equal(got.pid, process.pid);
    assert.equal(got.environment.ep, 'cpu');
    assert.equal(got.environment.seed, 7);
    assert.equal(got.environment.versions.node, process.versions.node);
    assert.deepEqual(got.inputs, [
      { role: 'model', path: model, sha256: createHash('sha256').update('not really onnx').digest('hex'), bytes: 15 },
      { role: 'data', path: 'synthetic:8', sha256: null, bytes: null },
    ]);
    assert.equal(got.metrics['accuracy.top1'], 0.75);
    assert.deepEqual(got.layerMetrics, [{ layer: 'conv1', metric: 'sqnrDb', value: 31.5 }, { layer: 'fc', metric: 'sqnrDb', value: 12 }]);
    assert.deepEqual(got.result, result);
    assert.equal(got.artifacts.length, 1);
    assert.equal(got.artifacts[0]!.path, join(home, 'artifacts', run.id, 'report.json'));
    assert.equal(await readFile(art.path, 'utf8'), '{"ok":true}');
    assert.equal(got.artifacts[0]!.bytes, 11);
    assert.ok(got.finishedAt! >= got.startedAt!);
    assert.throws(() => run.recordMetrics({ a: 1 }), /already ended/);

    // The model is known by content, and list shows the run with its metrics.
    const [summary] = store.listRuns();
    assert.equal(summary!.id, run.id);
    assert.equal(summary!.metrics['accuracy.top5'], 0.9);
  } finally {
    store.close();
  }
});

test('a failing run keeps earlier runs and their artifacts, and records why it failed', async () => {
  const home = await tempHome();
  const store = openStore({ home });
  try {
    const first = await store.startRun({ kind: 'quantize', command: ['quantize'] });
    const kept = await first.writeArtifact('model.onnx', (tmp) => writeFile(tmp, 'first model'));
    first.succeed({ bytesAfter: 11 });

    const second = await store.startRun({ kind: 'quantize', command: ['quantize'] });
    await assert.rejects(second.writeArtifact('model.onnx', async (tmp) => {
      await writeFile(tmp, 'half a mod');
      throw new WhittleError('RUNTIME', 'onnxruntime refused the graph');
    }), /refused/);
    second.fail(new WhittleError('RUNTIME', 'onnxruntime refused the graph'));

    const third = await store.startRun({ kind: 'prune', command: ['prune'] });
    third.fail(new WhittleError('CANCELLED', 'stopped'));
    const fourth = await store.startRun({ kind: 'analyze', command: ['analyze'] });
    fourth.cancel('stopped from the app');
    assert.throws(() => fourth.succeed({}), /already ended/);

    assert.equal(readFileSync(kept.path, 'utf8'), 'first model');
    assert.equal(store.getRun(first.id).artifacts.length, 1);
    const failed = store.getRun(second.id);
    assert.equal(failed.status, 'failed');
    assert.equal(failed.errorCode, 'RUNTIME');
    assert.equal(failed.error, 'onnxruntime refused the graph');
    assert.equal(failed.artifacts.length, 0);
    assert.equal(store.getRun(third.id).status, 'cancelled');
    assert.deepEqual([store.getRun(fourth.id).status, store.getRun(fourth.id).error], ['cancelled', 'stopped from the app']);
    assert.deepEqual(store.listRuns().map((r) => r.id), [fourth.id, third.id, second.id, first.id]);
    assert.deepEqual(store.listRuns({ status: 'failed' }).map((r) => r.id), [second.id]);
    assert.deepEqual(store.listRuns({ kind: 'quantize', limit: 1 }).map((r) => r.id), [second.id]);
    assert.equal(store.countRuns({ kind: 'quantize' }), 2);
  } finally {
    store.close();
  }
});

test('getRun takes a unique id prefix; unknown ids are NOT_FOUND and ambiguous ones say so', async () => {
  const home = await tempHome();
  const store = openStore({ home });
  try {
    const a = await store.startRun({ kind: 'eval', command: [] });
    const b = await store.startRun({ kind: 'eval', command: [] });
    // Both ids start with r + the same time digits; the last characters tell them apart.
    let i = 1;
    while (a.id.slice(0, i) === b.id.slice(0, i)) i++;
    assert.equal(store.getRun(a.id.slice(0, i)).id, a.id);
    assert.equal(store.getRun(b.id.toUpperCase()).id, b.id);
    assert.throws(() => store.getRun(a.id.slice(0, i - 1)), (e: unknown) => e instanceof WhittleError && e.code === 'BAD_USAGE' && /ambiguous/.test(e.message));
    assert.throws(() => store.getRun('rzzzzzz'), (e: unknown) => e instanceof WhittleError && e.code === 'NOT_FOUND');
    assert.throws(() => store.getRun("r' OR 1=1 --"), (e: unknown) => e instanceof WhittleError && e.code === 'NOT_FOUND');
  } finally {
    store.close();
  }
});

test('input hashes are cached by path, size and mtime', async () => {
  const home = await tempHome();
  const model = join(home, 'm.onnx');
  await writeFile(model, 'aaaa');
  const fixed = new Date('2024-01-01T00:00:00Z');
  await utimes(model, fixed, fixed);
  const store = openStore({ home });
  try {
    const sha = async () => (store.getRun((await store.startRun({ kind: 'eval', command: [], inputs: [{ role: 'model', path: model }] })).id)).inputs[0]!.sha256;
    const first = await sha();
    // Same size and mtime: the cache answers without reading, so the stale hash proves it was used.
    await writeFile(model, 'bbbb');
    await utimes(model, fixed, fixed);
    assert.equal(await sha(), first);
    await utimes(model, new Date(), new Date());
    assert.notEqual(await sha(), first);
  } finally {
    store.close();
  }
});

test('two stores on one home can record runs at once', async () => {
  const home = await tempHome();
  const s1 = openStore({ home });
  const s2 = openStore({ home });
  try {
    const [r1, r2] = await Promise.all([s1.startRun({ kind: 'eval', command: [], experimentName: 'x' }), s2.startRun({ kind: 'eval', command: [], experimentName: 'x' })]);
    r1.succeed({}); r2.succeed({});
    const runs = s1.listRuns();
    assert.equal(runs.length, 2);
    assert.equal(runs[0]!.experimentId, runs[1]!.experimentId);
  } finally {
    s1.close(); s2.close();
  }
});
