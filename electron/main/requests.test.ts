import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_MESSAGE_CHARS } from '../../api/envelope.ts';
import { parseIpcRequest } from './requests.ts';

test('a request envelope passes as plain data', () => {
  const r = parseIpcRequest({ id: 3, method: 'models.open', params: { path: '/m.onnx' } });
  assert.deepEqual(r, { ok: true, request: { id: 3, method: 'models.open', params: { path: '/m.onnx' } } });
  const noParams = parseIpcRequest({ id: 'a', method: 'app.info' });
  assert.equal(noParams.ok, true);
});

test('anything else is answered with BAD_USAGE, keeping the id when there is one', () => {
  const cases: [unknown, string | number | null, RegExp][] = [
    [null, null, /not a request envelope/],
    [undefined, null, /empty/],
    ['text', null, /not a request envelope/],
    [{ id: 1 }, 1, /method/],
    [{ id: -1, method: 'app.info' }, -1, /id/],
    [{ id: 1, method: 'app.info', params: {}, extra: true }, 1, /not a request envelope/],
    [{ id: 1, method: 'x'.repeat(65) }, 1, /method/],
    [{ id: 'x'.repeat(65), method: 'app.info' }, null, /id/],
  ];
  for (const [value, id, message] of cases) {
    const r = parseIpcRequest(value);
    assert.equal(r.ok, false, JSON.stringify(value));
    if (r.ok) continue;
    assert.equal(r.reply.ok, false);
    assert.equal(r.reply.id, id);
    if (!r.reply.ok) {
      assert.equal(r.reply.error.code, 'BAD_USAGE');
      assert.match(r.reply.error.message, message);
    }
  }
});

test('oversized and non-JSON requests are refused before validation', () => {
  const big = parseIpcRequest({ id: 1, method: 'models.open', params: { path: 'x'.repeat(MAX_MESSAGE_CHARS) } });
  assert.equal(big.ok, false);
  if (!big.ok && !big.reply.ok) assert.match(big.reply.error.message, /over the \d+ limit/);
  const cyclic: Record<string, unknown> = { id: 1, method: 'app.info' };
  cyclic.params = cyclic;
  const c = parseIpcRequest(cyclic);
  assert.equal(c.ok, false);
  const bigint = parseIpcRequest({ id: 1, method: 'app.info', params: { n: 1n } });
  assert.equal(bigint.ok, false);
  if (!bigint.ok && !bigint.reply.ok) assert.match(bigint.reply.error.message, /plain JSON/);
});
