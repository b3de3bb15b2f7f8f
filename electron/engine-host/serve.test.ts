import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createDispatcher, type Handlers } from '../../api/dispatch.ts';
import type { FromHost } from '../shared/host-protocol.ts';
import { serveEngine, type EngineLike } from './serve.ts';

function fakePort() {
  const sent: FromHost[] = [];
  let listener: (e: { data: unknown }) => void = () => {};
  return {
    sent,
    deliver: (data: unknown) => listener({ data }),
    port: { on: (_: 'message', l: (e: { data: unknown }) => void) => void (listener = l), postMessage: (m: FromHost) => void sent.push(m) },
  };
}

function fakeEngine(handlers: Partial<Handlers>) {
  let push: (p: { event: string; payload: unknown }) => void = () => {};
  let closed = 0;
  const engine: EngineLike = {
    dispatch: createDispatcher(handlers as Handlers),
    onPush: (l) => {
      push = l;
      return () => {};
    },
    close: async () => void closed++,
  };
  return { engine, push: (p: { event: string; payload: unknown }) => push(p), closed: () => closed };
}

const tick = () => new Promise((r) => setImmediate(r));

test('the host says ready, answers calls through the dispatcher and forwards pushes', async () => {
  const p = fakePort();
  const e = fakeEngine({ 'models.recent': () => [] });
  serveEngine(p.port, e.engine, () => assert.fail('no exit'));
  assert.deepEqual(p.sent[0], { type: 'ready', pid: process.pid });
  p.deliver({ type: 'call', seq: 5, request: { id: 9, method: 'models.recent', params: {} } });
  p.deliver({ type: 'call', seq: 6, request: { id: 10, method: 'no.such', params: {} } });
  p.deliver({ type: 'nonsense' });
  await tick();
  const bySeq = (seq: number) => p.sent.find((m) => m.type === 'reply' && m.seq === seq);
  assert.deepEqual(bySeq(5), { type: 'reply', seq: 5, reply: { id: 9, ok: true, result: [] } });
  assert.deepEqual(bySeq(6), { type: 'reply', seq: 6, reply: { id: 10, ok: false, error: { code: 'BAD_USAGE', message: 'unknown method "no.such"' } } });
  e.push({ event: 'experiments.changed', payload: { runId: null } });
  assert.deepEqual(p.sent[3], { type: 'push', push: { event: 'experiments.changed', payload: { runId: null } } });
  assert.equal(p.sent.length, 4);
});

test('a dispatcher that throws still answers (INTERNAL)', async () => {
  const p = fakePort();
  const e = fakeEngine({});
  e.engine.dispatch = () => Promise.reject(new Error('boom'));
  serveEngine(p.port, e.engine, () => {});
  p.deliver({ type: 'call', seq: 1, request: { id: 1, method: 'app.info' } });
  await tick();
  assert.deepEqual(p.sent[1], { type: 'reply', seq: 1, reply: { id: 1, ok: false, error: { code: 'INTERNAL', message: 'app.info failed: boom' } } });
});

test('shutdown closes the engine once, then exits; later pushes are dropped', async () => {
  const p = fakePort();
  const e = fakeEngine({});
  const exits: number[] = [];
  serveEngine(p.port, e.engine, (c) => void exits.push(c));
  p.deliver({ type: 'shutdown' });
  p.deliver({ type: 'shutdown' });
  e.push({ event: 'job.log', payload: {} });
  await tick();
  assert.equal(e.closed(), 1);
  assert.deepEqual(exits, [0]);
  assert.equal(p.sent.length, 1);
});

test('start failures read as one line, with the fix for a native module built for Node', async () => {
  const { startFailureMessage } = await import('./serve.ts');
  assert.equal(startFailureMessage(new Error('store: /h/whittle.db is not a SQLite database\n  at x')), 'the engine did not start: store: /h/whittle.db is not a SQLite database');
  const abi = startFailureMessage(new Error("The module '/n/better_sqlite3.node'\nwas compiled against a different Node.js version using\nNODE_MODULE_VERSION 115. This version of Node.js requires\nNODE_MODULE_VERSION 140."));
  assert.match(abi, /another Node\.js ABI/);
  assert.match(abi, /@electron\/rebuild/);
});
