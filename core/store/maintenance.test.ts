import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { WhittleError } from '../../api/errors.ts';
import { compareLayerMetrics } from './compare.ts';
import { openStore } from './store.ts';
import { tempHome } from './test-home.ts';

test('failRun closes a run left running (failed or cancelled) and leaves an ended run alone', async () => {
  const home = await tempHome();
  const store = openStore({ home });
  try {
    const a = await store.startRun({ kind: 'eval', command: ['eval', 'a.onnx'] });
    const b = await store.startRun({ kind: 'eval', command: ['eval', 'b.onnx'] });
    const c = await store.startRun({ kind: 'eval', command: ['eval', 'c.onnx'] });
    c.succeed({ ok: 1 });
    assert.equal(store.failRun(a.id, 'RUNTIME', 'the job process was killed by SIGKILL'), true);
    assert.equal(store.failRun(b.id, 'CANCELLED', 'cancelled by the user'), true);
    assert.equal(store.failRun(c.id, 'RUNTIME', 'too late'), false);
    assert.equal(store.failRun(a.id, 'RUNTIME', 'twice'), false);
    const ra = store.getRun(a.id);
    assert.deepEqual([ra.status, ra.errorCode, ra.error], ['failed', 'RUNTIME', 'the job process was killed by SIGKILL']);
    assert.ok(ra.finishedAt);
    assert.equal(store.getRun(b.id).status, 'cancelled');
    assert.equal(store.getRun(c.id).status, 'succeeded');
  } finally {
    store.close();
  }
});

test('deleteRun removes a finished run, its rows and its artifact folder, and refuses a running one', async () => {
  const home = await tempHome();
  const store = openStore({ home });
  try {
    const run = await store.startRun({ kind: 'quantize', command: ['quantize', 'm.onnx'] });
    const src = join(home, 'out.onnx');
    writeFileSync(src, 'model bytes');
    await run.addArtifact('out.onnx', src);
    run.recordMetrics({ bytesAfter: 11 });
    run.recordLayerMetrics([{ layer: 'conv1', metric: 'sqnr', value: 30 }]);
    await assert.rejects(store.deleteRun(run.id), (err: unknown) => err instanceof WhittleError && err.code === 'BAD_USAGE' && /still running/.test(err.message));
    run.succeed({ bytesAfter: 11 });
    assert.equal(await store.deleteRun(run.id.slice(0, 12)), run.id);
    assert.ok(!existsSync(join(home, 'artifacts', run.id)));
    assert.throws(() => store.getRun(run.id), (err: unknown) => err instanceof WhittleError && err.code === 'NOT_FOUND');
    assert.equal(store.countRuns(), 0);
  } finally {
    store.close();
  }
});

test('listRuns filters by text in the model path or the command, case-insensitively, with % and _ literal', async () => {
  const home = await tempHome();
  const model = join(home, 'SqueezeNet_fp32.onnx');
  writeFileSync(model, 'x');
  const store = openStore({ home });
  try {
    const a = await store.startRun({ kind: 'eval', command: ['eval', model], inputs: [{ role: 'model', path: model }] });
    const b = await store.startRun({ kind: 'quantize', command: ['quantize', 'other.onnx', '--method', 'dynamic'] });
    a.succeed({});
    b.succeed({});
    assert.deepEqual(store.listRuns({ text: 'squeezenet' }).map((r) => r.id), [a.id]);
    assert.deepEqual(store.listRuns({ text: 'DYNAMIC' }).map((r) => r.id), [b.id]);
    assert.deepEqual(store.listRuns({ text: 'net_fp' }).map((r) => r.id), [a.id]);
    assert.deepEqual(store.listRuns({ text: 'net%fp' }), []);
    assert.deepEqual(store.listRuns({ text: 'Net_' + 'x' }), []);
    assert.equal(store.countRuns({ text: '.onnx' }), 2);
  } finally {
    store.close();
  }
});

test('compareLayerMetrics lines up (layer, metric) pairs across runs in recorded order', () => {
  const rows = compareLayerMetrics([
    { layerMetrics: [{ layer: 'conv1', metric: 'sqnr', value: 30 }, { layer: 'fc', metric: 'sqnr', value: 20 }] },
    { layerMetrics: [{ layer: 'fc', metric: 'sqnr', value: 25 }, { layer: 'conv2', metric: 'sqnr', value: 12 }] },
  ]);
  assert.deepEqual(rows, [
    { layer: 'conv1', metric: 'sqnr', values: [30, null] },
    { layer: 'fc', metric: 'sqnr', values: [20, 25] },
    { layer: 'conv2', metric: 'sqnr', values: [null, 12] },
  ]);
});
