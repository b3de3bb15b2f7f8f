import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { compareRuns } from './compare.ts';
import { csvCell, toCsv } from './export-csv.ts';
import { mlflowKey, writeMlflowRuns } from './export-mlflow.ts';
import { flattenMetrics } from './flatten.ts';
import { resolveWhittleHome } from './home.ts';
import { openStore } from './store.ts';
import { tempHome } from './test-home.ts';
import type { RunSummary } from './types.ts';

test('CSV cells are quoted per RFC 4180', () => {
  assert.equal(csvCell('plain'), 'plain');
  assert.equal(csvCell('a,b'), '"a,b"');
  assert.equal(csvCell('say "hi"'), '"say ""hi"""');
  assert.equal(csvCell('two\nlines'), '"two\nlines"');
  assert.equal(csvCell('cr\rhere'), '"cr\rhere"');
  assert.equal(csvCell(' padded'), '" padded"');
  assert.equal(csvCell(0.5), '0.5');
  assert.equal(csvCell(null), '');
});

const summary = (id: string, metrics: Record<string, number>, extra: Partial<RunSummary> = {}): RunSummary => ({
  id, kind: 'eval', status: 'succeeded', experimentId: null, experimentName: null, command: ['eval', 'm.onnx'],
  createdAt: '2024-05-01T10:00:00.000Z', startedAt: '2024-05-01T10:00:00.000Z', finishedAt: '2024-05-01T10:00:02.000Z',
  error: null, model: '/models/m.onnx', metrics, ...extra,
});

test('CSV has one row per run and a column per metric any run has', () => {
  const csv = toCsv([
    summary('r1', { 'accuracy.top1': 0.75, bytes: 1000 }),
    summary('r2', { 'latency.p50Ms': 2.5 }, { status: 'failed', error: 'bad, "really" bad\nsecond line', model: '/my models/a,b.onnx' }),
  ]);
  const lines = csv.split('\r\n');
  assert.equal(lines[0], 'id,kind,status,experiment,model,model_file,created_at,started_at,finished_at,command,error,accuracy.top1,bytes,latency.p50Ms');
  assert.equal(lines[1], 'r1,eval,succeeded,,/models/m.onnx,m.onnx,2024-05-01T10:00:00.000Z,2024-05-01T10:00:00.000Z,2024-05-01T10:00:02.000Z,whittle eval m.onnx,,0.75,1000,');
  // The error's line break stays inside its quoted cell, so the record spans two physical lines.
  assert.equal(lines[2], 'r2,eval,failed,,"/my models/a,b.onnx","a,b.onnx",2024-05-01T10:00:00.000Z,2024-05-01T10:00:00.000Z,2024-05-01T10:00:02.000Z,whittle eval m.onnx,"bad, ""really"" bad\nsecond line",,,2.5');
  assert.equal(lines[3], '');
});

test('compare lines metrics up by key with deltas against the first run', () => {
  const cmp = compareRuns([
    { id: 'a', metrics: { 'accuracy.top1': 0.76, bytes: 1000 } },
    { id: 'b', metrics: { 'accuracy.top1': 0.75, bytes: 250, 'latency.p50Ms': 3 } },
    { id: 'c', metrics: { bytes: 500 } },
  ]);
  assert.deepEqual(cmp.runs, ['a', 'b', 'c']);
  assert.deepEqual(cmp.metrics.map((m) => m.key), ['accuracy.top1', 'bytes', 'latency.p50Ms']);
  const top1 = cmp.metrics[0]!;
  assert.deepEqual(top1.values, [0.76, 0.75, null]);
  assert.equal(top1.deltas[0], 0);
  assert.ok(Math.abs(top1.deltas[1]! - -0.01) < 1e-12);
  assert.equal(top1.deltas[2], null);
  assert.deepEqual(cmp.metrics[1]!.deltas, [0, -750, -500]);
  assert.deepEqual(cmp.metrics[2]!.deltas, [null, null, null], 'no base value, no delta');
});

test('flattenMetrics keeps finite numbers and booleans, as dotted keys', () => {
  assert.deepEqual(flattenMetrics({ a: { b: { c: 1 } }, ok: false, nan: NaN, inf: Infinity, s: 'x', n: null, list: [1, 2], d: 2 }),
    { 'a.b.c': 1, ok: 0, d: 2 });
  assert.deepEqual(flattenMetrics({ top1: 0.5 }, 'accuracy'), { 'accuracy.top1': 0.5 });
  assert.deepEqual(flattenMetrics(3), {});
});

test('the store home follows WHITTLE_HOME, then each platform’s app-data folder', () => {
  assert.equal(resolveWhittleHome({ WHITTLE_HOME: '/data/wh' }, 'linux', '/home/u'), '/data/wh');
  assert.equal(resolveWhittleHome({}, 'linux', '/home/u'), '/home/u/.local/share/whittle');
  assert.equal(resolveWhittleHome({ XDG_DATA_HOME: '/xdg' }, 'linux', '/home/u'), '/xdg/whittle');
  assert.equal(resolveWhittleHome({ XDG_DATA_HOME: 'relative' }, 'linux', '/home/u'), '/home/u/.local/share/whittle');
  assert.equal(resolveWhittleHome({}, 'darwin', '/Users/u'), '/Users/u/Library/Application Support/Whittle');
  assert.equal(resolveWhittleHome({ APPDATA: 'C:\\Users\\u\\AppData\\Roaming' }, 'win32', 'C:\\Users\\u'), 'C:\\Users\\u\\AppData\\Roaming\\Whittle');
});

test('MLflow export writes the FileStore layout MLflow reads', async () => {
  const home = await tempHome('mlflow');
  const store = openStore({ home });
  let id: string;
  try {
    const run = await store.startRun({ kind: 'quantize', command: ['quantize', 'm.onnx', '-o', 'q.onnx'], environment: { ep: 'cpu', seed: 1 }, experimentName: "Bob's int8" });
    run.recordMetrics({ bytesAfter: 250, accuracy: { top1: 0.75 }, 'weird/key': 1 });
    run.succeed({});
    id = run.id;
    const root = await writeMlflowRuns([store.getRun(id)], join(home, 'export'));
    assert.equal(root, join(home, 'export', 'mlruns'));
    const runDir = join(root, '0', id);
    assert.deepEqual(readdirSync(runDir).sort(), ['artifacts', 'meta.yaml', 'metrics', 'params', 'tags']);
    assert.match(readFileSync(join(root, '0', 'meta.yaml'), 'utf8'), /^experiment_id: '0'$/m);

    const meta = readFileSync(join(runDir, 'meta.yaml'), 'utf8');
    assert.match(meta, new RegExp(`^run_id: '${id}'$`, 'm'));
    assert.match(meta, new RegExp(`^run_uuid: '${id}'$`, 'm'));
    assert.match(meta, /^status: 3$/m); // FINISHED
    assert.match(meta, /^experiment_id: '0'$/m);
    assert.match(meta, /^lifecycle_stage: 'active'$/m);
    assert.match(meta, /^start_time: \d{13}$/m);
    assert.match(meta, /^artifact_uri: 'file:\/\/.*\/artifacts'$/m);

    assert.deepEqual(readdirSync(join(runDir, 'metrics')).sort(), ['accuracy.top1', 'bytesAfter', 'weird_key']);
    const line = readFileSync(join(runDir, 'metrics', 'accuracy.top1'), 'utf8');
    assert.match(line, /^\d{13} 0\.75 0\n$/); // "<timestamp ms> <value> <step>"
    assert.equal(readFileSync(join(runDir, 'params', 'kind'), 'utf8'), 'quantize');
    assert.equal(readFileSync(join(runDir, 'params', 'ep'), 'utf8'), 'cpu');
    assert.equal(readFileSync(join(runDir, 'params', 'command'), 'utf8'), 'whittle quantize m.onnx -o q.onnx');
    assert.equal(readFileSync(join(runDir, 'tags', 'mlflow.runName'), 'utf8'), id);
    assert.equal(readFileSync(join(runDir, 'tags', 'whittle.experiment'), 'utf8'), "Bob's int8");
  } finally {
    store.close();
  }
  assert.equal(mlflowKey('..'), '_..');
  assert.equal(mlflowKey('a/../b'), 'a_.._b');
});

test('compare puts a recipe\'s evaluation (eval.*) on the rows of an eval run\'s bare metrics', () => {
  const cmp = compareRuns([
    { id: 'fp32', metrics: { 'accuracy.top1': 0.989, bytes: 26454, seconds: 2 } },
    { id: 'int8', metrics: { 'eval.accuracy.top1': 0.9893, 'eval.bytes': 11753, 'eval.seconds': 1.5, seconds: 4, bytesAfter: 11753 } },
  ]);
  assert.deepEqual(cmp.metrics.map((m) => m.key), ['accuracy.top1', 'bytes', 'bytesAfter', 'eval.seconds', 'seconds']);
  assert.deepEqual(cmp.metrics[0]!.values, [0.989, 0.9893]);
  assert.deepEqual(cmp.metrics[1]!.deltas, [0, 11753 - 26454]);
  // the recipe's own total time keeps its row; its evaluation's time stays under eval.
  assert.deepEqual(cmp.metrics.find((m) => m.key === 'seconds')!.values, [2, 4]);
  assert.deepEqual(cmp.metrics.find((m) => m.key === 'eval.seconds')!.values, [null, 1.5]);
});
