import assert from 'node:assert/strict';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fixture } from '../../core/testing/fixtures.ts';
import { readOnnxFile } from '../../native-models/formats/onnx/index.ts';
import { useTempHome, whittle } from '../testing.ts';

describe('eval and convert record runs in the store', () => {
  const dirs = useTempHome('work');

  it('eval --json prints the SPEC §3 document and records a succeeded run with its metrics', async () => {
    const r = await whittle('eval', fixture('iris', 'iris_network.onnx'), '--data', fixture('iris', 'iris_X.npy'), '--ep', 'cpu', '--runs', '3', '--json');
    assert.equal(r.code, 0, r.err);
    const doc = JSON.parse(r.out);
    for (const key of ['model', 'ep', 'device', 'data', 'accuracy', 'agreement', 'latency', 'bytes', 'parameters', 'nonzeroParameters']) assert.ok(key in doc, key);
    assert.deepEqual(Object.keys(doc.data).sort(), ['kind', 'n', 'path', 'preprocess', 'preprocessFrom', 'synthetic']);
    assert.deepEqual([doc.data.preprocess, doc.data.preprocessFrom], ['none', 'default']);
    assert.equal(doc.accuracy.top1, 0.98);
    assert.equal(doc.latency.runs, 3);
    const list = JSON.parse((await whittle('experiments', 'list', '--json')).out);
    const run = list.runs.find((x: { id: string }) => x.id === doc.runId);
    assert.ok(run, 'the run is listed');
    assert.equal(run.status, 'succeeded');
    assert.equal(run.metrics['accuracy.top1'], 0.98);
    const shown = JSON.parse((await whittle('experiments', 'show', doc.runId, '--json')).out);
    assert.equal(shown.environment.ep, 'cpu');
    assert.ok(shown.inputs.some((i: { role: string; sha256: string }) => i.role === 'model' && /^[0-9a-f]{64}$/.test(i.sha256)));
  });

  it('convert to external data and back: recorded with artifacts, outputs bit-identical', async () => {
    const ext = join(dirs.work(), 'squeeze-ext.onnx');
    const r = await whittle('convert', fixture('squeezenet', 'squeezenet1.0_fp32.onnx'), '-o', ext, '--external-data', '--json');
    assert.equal(r.code, 0, r.err);
    const doc = JSON.parse(r.out);
    const model = readOnnxFile(fixture('squeezenet', 'squeezenet1.0_fp32.onnx'));
    const big = [...model.graph.initializers.values()].filter((t) => t.byteLength >= 1024).length;
    assert.equal(doc.externalTensors, big, 'every tensor of 1 KiB or more went to external data');
    assert.ok(existsSync(join(dirs.work(), 'squeeze-ext.onnx.data')));
    const shown = JSON.parse((await whittle('experiments', 'show', doc.runId, '--json')).out);
    assert.deepEqual(shown.artifacts.map((a: { name: string }) => a.name).sort(), ['squeeze-ext.onnx', 'squeeze-ext.onnx.data']);
    const back = join(dirs.work(), 'squeeze-inline.onnx');
    assert.equal((await whittle('convert', ext, '-o', back, '--no-record')).code, 0);
    for (const model of [ext, back]) {
      const e = JSON.parse((await whittle('eval', model, '--data', fixture('imagenet-100'), '--preprocess', 'caffe', '--limit', '10',
        '--reference', fixture('squeezenet', 'squeezenet1.0_fp32.onnx'), '--ep', 'cpu', '--runs', '1', '--no-record', '--json')).out);
      assert.equal(e.agreement.identical, true, `${model} gives bit-identical outputs`);
    }
  });

  it('a bad model: exit 2, one line naming it, recorded as failed, earlier runs intact', async () => {
    const before = JSON.parse((await whittle('experiments', 'list', '--json')).out).runs.length;
    const bad = join(dirs.work(), 'garbage.onnx');
    writeFileSync(bad, 'this is not a model at all, just text\n');
    const r = await whittle('eval', bad, '--data', 'synthetic:2');
    assert.equal(r.code, 2);
    assert.equal(r.err.trim().split('\n').length, 1);
    assert.ok(r.err.includes(bad));
    const runs = JSON.parse((await whittle('experiments', 'list', '--json')).out).runs;
    assert.equal(runs.length, before + 1);
    assert.equal(runs[0].status, 'failed');
    assert.ok(runs.slice(1).every((x: { status: string }) => x.status === 'succeeded'));
  });

  it('--no-record leaves the store untouched', async () => {
    const before = JSON.parse((await whittle('experiments', 'list', '--json')).out).runs.length;
    assert.equal((await whittle('eval', fixture('mnist', 'mnist.onnx'), '--runs', '1', '--no-record')).code, 0);
    assert.equal(JSON.parse((await whittle('experiments', 'list', '--json')).out).runs.length, before);
    assert.ok(readdirSync(dirs.home()).includes('whittle.db'));
  });
});
