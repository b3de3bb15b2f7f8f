import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ReplyEnvelope, RequestEnvelope } from '../../api/envelope.ts';
import type { ToHost } from '../shared/host-protocol.ts';
import { createEngineLink, type EngineLinkOptions, type HostEvents, type LinkState, type Notice } from './engine-link.ts';

/** A scripted host: records what it is sent; the test decides when it is ready, replies or dies. */
class FakeHost {
  sent: ToHost[] = [];
  killed = false;
  constructor(readonly events: HostEvents) {}
  ready() {
    this.events.message({ type: 'ready', pid: 1234 });
  }
  calls() {
    return this.sent.filter((m): m is Extract<ToHost, { type: 'call' }> => m.type === 'call');
  }
  answer(index: number, result: unknown) {
    const call = this.calls()[index]!;
    this.events.message({ type: 'reply', seq: call.seq, reply: { id: call.request.id, ok: true, result } });
  }
}

function harness(overrides: Partial<EngineLinkOptions> = {}) {
  const hosts: FakeHost[] = [];
  const pushes: unknown[] = [];
  const notices: Notice[] = [];
  const states: LinkState[] = [];
  const timers: { fn: () => void; ms: number; cancelled: boolean }[] = [];
  let clock = 0;
  const link = createEngineLink({
    spawn(events) {
      const host = new FakeHost(events);
      hosts.push(host);
      return { post: (m) => void host.sent.push(m), kill: () => void (host.killed = true) };
    },
    onPush: (p) => void pushes.push(p),
    onNotice: (n) => void notices.push(n),
    onState: (s) => void states.push(s),
    now: () => clock,
    schedule(fn, ms) {
      const t = { fn, ms, cancelled: false };
      timers.push(t);
      return () => void (t.cancelled = true);
    },
    ...overrides,
  });
  const runTimers = () => {
    for (const t of timers.splice(0)) if (!t.cancelled) t.fn();
  };
  return { link, hosts, pushes, notices, states, timers, runTimers, tick: (ms: number) => void (clock += ms) };
}

const req = (id: number, method = 'app.info', params: unknown = {}): RequestEnvelope => ({ id, method, params });
const settled = async <T>(p: Promise<T>) => {
  const marker = Symbol('pending');
  const r = await Promise.race([p, new Promise<typeof marker>((res) => setImmediate(() => res(marker)))]);
  return r === marker ? 'pending' : r;
};

test('calls wait for the host to be ready, then go through and get their replies', async () => {
  const h = harness();
  const p1 = h.link.call(req(1));
  const p2 = h.link.call(req(2, 'models.recent'));
  assert.equal(h.hosts[0]!.calls().length, 0, 'nothing is sent before ready');
  h.hosts[0]!.ready();
  assert.equal(h.link.state(), 'ready');
  assert.deepEqual(h.hosts[0]!.calls().map((c) => c.request.method), ['app.info', 'models.recent']);
  h.hosts[0]!.answer(1, []);
  h.hosts[0]!.answer(0, { version: 'x' });
  assert.deepEqual(await p1, { id: 1, ok: true, result: { version: 'x' } });
  assert.deepEqual(await p2, { id: 2, ok: true, result: [] });
  assert.equal(h.link.pendingCount(), 0);
});

test("replies are matched by main's own sequence number, not the renderer's id", async () => {
  const h = harness();
  h.hosts[0]!.ready();
  // Two calls with the same renderer id (a reloaded page starts again at 1).
  const a = h.link.call(req(1, 'app.info'));
  const b = h.link.call(req(1, 'models.recent'));
  h.hosts[0]!.answer(1, 'second');
  assert.equal(await settled(a), 'pending');
  assert.deepEqual(await b, { id: 1, ok: true, result: 'second' });
  h.hosts[0]!.answer(0, 'first');
  assert.deepEqual(await a, { id: 1, ok: true, result: 'first' });
});

test('pushes pass through; malformed host messages are ignored', async () => {
  const h = harness();
  h.hosts[0]!.ready();
  h.hosts[0]!.events.message({ type: 'push', push: { event: 'job.progress', payload: { jobId: 'j' } } });
  h.hosts[0]!.events.message({ type: 'push' });
  h.hosts[0]!.events.message('garbage');
  h.hosts[0]!.events.message({ type: 'reply', seq: 999, reply: { id: 1, ok: true, result: 1 } });
  assert.deepEqual(h.pushes, [{ event: 'job.progress', payload: { jobId: 'j' } }]);
});

test('a host that dies fails the calls it had, keeps the others, restarts and carries on', async () => {
  const h = harness();
  h.hosts[0]!.ready();
  const inFlight = h.link.call(req(7, 'jobs.start', { spec: { kind: 'sleep', seconds: 1 } }));
  h.hosts[0]!.events.message({ type: 'push', push: { event: 'job.state', payload: {} } });
  h.hosts[0]!.events.exit(null);
  const reply = (await inFlight) as Extract<ReplyEnvelope, { ok: false }>;
  assert.equal(reply.ok, false);
  assert.equal(reply.id, 7);
  assert.equal(reply.error.code, 'RUNTIME');
  assert.match(reply.error.message, /^jobs\.start: the engine process stopped while handling this call \(it crashed or was killed\)/);
  assert.equal(h.link.state(), 'restarting');
  assert.equal(h.notices.length, 1);
  assert.equal(h.notices[0]!.level, 'error');
  assert.match(h.notices[0]!.message, /stopped unexpectedly.*restarting.*interrupted/);

  // A call made while no host runs waits for the new one instead of failing.
  const waiting = h.link.call(req(8));
  assert.equal(h.timers.length, 1);
  assert.equal(h.timers[0]!.ms, 250);
  h.runTimers();
  assert.equal(h.hosts.length, 2);
  // Events from the dead host no longer count.
  h.hosts[0]!.events.message({ type: 'ready', pid: 1 });
  assert.equal(h.link.state(), 'restarting');
  h.hosts[1]!.ready();
  assert.equal(h.link.state(), 'ready');
  assert.equal(h.hosts[1]!.calls().length, 1);
  h.hosts[1]!.answer(0, 'ok');
  assert.deepEqual(await waiting, { id: 8, ok: true, result: 'ok' });
  assert.deepEqual(h.notices.at(-1), { level: 'info', message: 'The engine is running again.' });
});

test('a fatal message names the cause in the error', async () => {
  const h = harness();
  const p = h.link.call(req(1));
  h.hosts[0]!.events.message({ type: 'fatal', message: 'the engine did not start: bad store' });
  h.hosts[0]!.events.exit(1);
  assert.equal(await settled(p), 'pending', 'never sent, so it waits for the next host');
  assert.match(h.notices[0]!.message, /the engine did not start: bad store \(exit code 1\)/);
});

test('a host that keeps dying is given up on with one clear error, and calls fail at once', async () => {
  const h = harness({ maxRestarts: 3 });
  const waiting = h.link.call(req(1));
  for (let i = 0; i < 4; i++) {
    h.hosts[i]!.events.exit(1);
    if (i < 3) {
      assert.equal(h.timers.at(-1)!.ms, 250 * 2 ** i, 'back-off doubles');
      h.runTimers();
    }
  }
  assert.equal(h.link.state(), 'failed');
  assert.equal(h.hosts.length, 4);
  const failed = (await waiting) as Extract<ReplyEnvelope, { ok: false }>;
  assert.match(failed.error.message, /failed 4 times in a row.*restart Whittle/);
  const later = (await h.link.call(req(2))) as Extract<ReplyEnvelope, { ok: false }>;
  assert.equal(later.ok, false);
  assert.match(later.error.message, /not running/);
  assert.equal(h.notices.at(-1)!.level, 'error');
  assert.match(h.notices.at(-1)!.message, /not restarted again/);
});

test('a host that ran long enough starts the failure count again', async () => {
  const h = harness({ maxRestarts: 1, stableAfterMs: 1000 });
  for (let i = 0; i < 3; i++) {
    h.hosts[i]!.ready();
    h.tick(5000);
    h.hosts[i]!.events.exit(1);
    assert.equal(h.link.state(), 'restarting', `restart ${i}`);
    h.runTimers();
  }
  assert.equal(h.hosts.length, 4);
});

test('a spawn that throws counts as a failed start', async () => {
  let n = 0;
  const h = harness({
    maxRestarts: 1,
    spawn() {
      n++;
      throw new Error('no such file');
    },
  });
  assert.equal(h.link.state(), 'restarting');
  h.runTimers();
  assert.equal(h.link.state(), 'failed');
  assert.equal(n, 2);
  assert.match(h.notices.at(-1)!.message, /could not start the engine process: no such file/);
});

test('close asks the host to shut down, fails what is left, and kills it if it lingers', async () => {
  const h = harness();
  h.hosts[0]!.ready();
  const inFlight = h.link.call(req(1, 'experiments.list'));
  const closing = h.link.close();
  assert.equal(h.link.close(), closing, 'one close');
  assert.deepEqual(h.hosts[0]!.sent.at(-1), { type: 'shutdown' });
  const refused = (await h.link.call(req(2))) as Extract<ReplyEnvelope, { ok: false }>;
  assert.match(refused.error.message, /closing/);
  h.runTimers(); // the kill timer
  assert.equal(h.hosts[0]!.killed, true);
  h.hosts[0]!.events.exit(null);
  await closing;
  assert.equal(h.link.state(), 'closed');
  const r = (await inFlight) as Extract<ReplyEnvelope, { ok: false }>;
  assert.match(r.error.message, /closing/);
  assert.equal(h.hosts.length, 1, 'no restart after close');
  assert.equal(h.notices.length, 0, 'a requested exit is not an error');
});

test('a clean shutdown does not need the kill', async () => {
  const h = harness();
  h.hosts[0]!.ready();
  const closing = h.link.close();
  h.hosts[0]!.events.exit(0);
  await closing;
  const killTimer = h.timers.find((t) => t.ms === 5000)!;
  assert.equal(killTimer.cancelled, true);
});
