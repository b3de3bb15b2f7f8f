import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RunSelection } from './selection.ts';

const get = (runId: string) => ({ id: 1, method: 'experiments.get', params: { runId } });
const detail = (id: string, artifacts: string[]) => ({ id: 1, ok: true as const, result: { id, artifacts: artifacts.map((path) => ({ name: path, path })) } });

test('the run last fetched with experiments.get is the selected one', () => {
  const s = new RunSelection();
  assert.equal(s.current(), null);
  assert.equal(s.revealTarget(), null);
  assert.equal(s.observe(get('r1'), detail('r1', ['/h/artifacts/r1/report.json', '/h/artifacts/r1/model.onnx'])), true);
  assert.deepEqual(s.current(), { runId: 'r1', artifacts: ['/h/artifacts/r1/report.json', '/h/artifacts/r1/model.onnx'] });
  assert.equal(s.revealTarget(), '/h/artifacts/r1/model.onnx');
  assert.equal(s.observe(get('r1'), detail('r1', ['/h/artifacts/r1/report.json', '/h/artifacts/r1/model.onnx'])), false, 'same run again: no change');
  assert.equal(s.observe(get('r2'), detail('r2', [])), true);
  assert.equal(s.revealTarget(), null);
  assert.equal(s.observe(get('r3'), detail('r3', ['/h/a/r3/out/model.json', '/h/a/r3/group1-shard1of1.bin'])), true);
  assert.equal(s.revealTarget(), '/h/a/r3/out/model.json');
});

test('other calls and failures leave it alone; deleting or losing the run clears it', () => {
  const s = new RunSelection();
  s.observe(get('r1'), detail('r1', ['/x/report.md']));
  assert.equal(s.revealTarget(), '/x/report.md');
  assert.equal(s.observe({ id: 2, method: 'experiments.list', params: {} }, { id: 2, ok: true, result: [] }), false);
  assert.equal(s.observe(get('r9'), { id: 1, ok: false, error: { code: 'INTERNAL', message: 'x' } }), false);
  assert.equal(s.observe({ id: 3, method: 'experiments.delete', params: { runId: 'r2' } }, { id: 3, ok: true, result: { ok: true } }), false);
  assert.equal(s.current()?.runId, 'r1');
  assert.equal(s.observe({ id: 3, method: 'experiments.delete', params: { runId: 'r1' } }, { id: 3, ok: true, result: { ok: true } }), true);
  assert.equal(s.current(), null);
  s.observe(get('r1'), detail('r1', []));
  assert.equal(s.observe(get('r1'), { id: 1, ok: false, error: { code: 'NOT_FOUND', message: 'gone' } }), true);
  assert.equal(s.current(), null);
});
