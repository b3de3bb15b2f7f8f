import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CALL_CHANNEL, PUSH_CHANNEL } from '../shared/channels.ts';
import { createBridge, type IpcRendererLike } from './bridge.ts';

function fakeIpc() {
  const listeners = new Map<string, Set<(event: unknown, ...args: unknown[]) => void>>();
  const invoked: [string, unknown[]][] = [];
  const ipc: IpcRendererLike = {
    invoke(channel, ...args) {
      invoked.push([channel, args]);
      return Promise.resolve({ id: 1, ok: true, result: 'r' });
    },
    on(channel, l) {
      if (!listeners.has(channel)) listeners.set(channel, new Set());
      listeners.get(channel)!.add(l);
    },
    removeListener(channel, l) {
      listeners.get(channel)?.delete(l);
    },
  };
  const emit = (channel: string, ...args: unknown[]) => {
    for (const l of listeners.get(channel) ?? []) l({ sender: 'ipcRenderer itself' }, ...args);
  };
  return { ipc, invoked, emit, listeners };
}

test('exactly the PreloadBridge: call, subscribe, pathForFile', () => {
  const bridge = createBridge(fakeIpc().ipc, () => '');
  assert.deepEqual(Object.keys(bridge).sort(), ['call', 'pathForFile', 'subscribe']);
});

test('call invokes whittle:call with the request alone and returns the reply', async () => {
  const f = fakeIpc();
  const bridge = createBridge(f.ipc, () => '');
  assert.deepEqual(await bridge.call({ id: 1, method: 'app.info', params: {} }), { id: 1, ok: true, result: 'r' });
  assert.deepEqual(f.invoked, [[CALL_CHANNEL, [{ id: 1, method: 'app.info', params: {} }]]]);
});

test('subscribers get the push payload only, never the IPC event; unsubscribe is idempotent', () => {
  const f = fakeIpc();
  const bridge = createBridge(f.ipc, () => '');
  const got: unknown[][] = [];
  const off = bridge.subscribe((...args: unknown[]) => void got.push(args));
  f.emit(PUSH_CHANNEL, { event: 'job.log', payload: 1 });
  f.emit('other-channel', 'nope');
  assert.deepEqual(got, [[{ event: 'job.log', payload: 1 }]]);
  off();
  off();
  f.emit(PUSH_CHANNEL, { event: 'job.log', payload: 2 });
  assert.equal(got.length, 1);
  assert.equal(f.listeners.get(PUSH_CHANNEL)!.size, 0);
  assert.throws(() => bridge.subscribe('x' as never), TypeError);
});

test('pathForFile gives the path, or "" for anything without one', () => {
  const bridge = createBridge(fakeIpc().ipc, (file: { name?: string }) => {
    if (!file || typeof file !== 'object') throw new TypeError('not a File');
    return file.name === 'dropped.onnx' ? '/data/dropped.onnx' : '';
  });
  assert.equal(bridge.pathForFile({ name: 'dropped.onnx' }), '/data/dropped.onnx');
  assert.equal(bridge.pathForFile({ name: 'made-in-page' }), '');
  assert.equal(bridge.pathForFile('a string'), '');
});
