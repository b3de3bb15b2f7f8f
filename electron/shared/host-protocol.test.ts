import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FromHost, hostConfigArg, parseHostConfig, ToHost } from './host-protocol.ts';

test('the host config travels as one argument and comes back intact', () => {
  const config = { jobCommand: ['/opt/Whittle/whittle', '/opt/Whittle/resources/app.asar/dist/cli/whittle.js'], examplesRoot: '/x y/fixtures' };
  assert.deepEqual(parseHostConfig(['/electron', '/host.js', hostConfigArg(config)]), config);
  assert.deepEqual(parseHostConfig([hostConfigArg({ jobCommand: ['node', 'cli.js'] })]), { jobCommand: ['node', 'cli.js'] });
});

test('a missing or broken host config is an error message', () => {
  assert.match(String(parseHostConfig(['/electron', '/host.js'])), /missing --whittle-host=/);
  assert.match(String(parseHostConfig(['--whittle-host={'])), /not JSON/);
  assert.equal(typeof parseHostConfig(['--whittle-host={"jobCommand":[]}']), 'string');
  assert.equal(typeof parseHostConfig(['--whittle-host={"jobCommand":["a"],"extra":1}']), 'string');
});

test('messages are checked strictly both ways', () => {
  assert.equal(ToHost.safeParse({ type: 'call', seq: 1, request: { id: 1, method: 'app.info' } }).success, true);
  assert.equal(ToHost.safeParse({ type: 'call', seq: -1, request: { id: 1, method: 'app.info' } }).success, false);
  assert.equal(ToHost.safeParse({ type: 'eval', code: '1' }).success, false);
  assert.equal(FromHost.safeParse({ type: 'reply', seq: 1, reply: { id: 1, ok: false, error: { code: 'RUNTIME', message: 'x' } } }).success, true);
  assert.equal(FromHost.safeParse({ type: 'push', push: { event: '', payload: 1 } }).success, false);
});
