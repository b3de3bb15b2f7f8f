import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { fixture } from '../core/testing/fixtures.ts';
import { startServer, type RunningServer } from './server.ts';

// The same refusals as server.test.ts, through the real engine (core/jobs/engine.ts): the server
// decides the readable folders, the engine enforces them (and adds the built-in examples, i.e.
// ../shared/fixtures, and its own artifacts/exports — so those are not "outside" here).
const ENGINE = fileURLToPath(new URL('../core/jobs/engine.ts', import.meta.url));
const skip = existsSync(ENGINE) ? false : 'core/jobs/engine.ts is not written yet';

function post(port: number, path: string, headers: Record<string, string>, body: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method: 'POST', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function signIn(port: number, token: string): Promise<string> {
  return new Promise((resolve, reject) => {
    httpRequest({ host: '127.0.0.1', port, path: `/?token=${token}` }, (res) => {
      res.resume();
      resolve(String(res.headers['set-cookie']?.[0]).split(';')[0]!);
    }).on('error', reject).end();
  });
}

describe('whittle serve with the real engine', { skip }, () => {
  let base: string;
  let workspace: string;
  let server: RunningServer;
  let ws: WebSocket;
  let nextId = 1;
  const call = (method: string, params: unknown) => new Promise<{ ok: boolean; result?: unknown; error?: { code: string; message: string } }>((resolve) => {
    const id = nextId++;
    const onMessage = (data: unknown) => {
      const reply = JSON.parse(String(data)) as { id?: number };
      if (reply.id !== id) return;
      ws.off('message', onMessage);
      resolve(reply as never);
    };
    ws.on('message', onMessage);
    ws.send(JSON.stringify({ id, method, params }));
  });

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'whittle-serve-engine-'));
    workspace = join(base, 'workspace');
    await mkdir(workspace);
    await copyFile(fixture('mnist', 'mnist.onnx'), join(workspace, 'mnist.onnx'));
    await mkdir(join(base, 'outside'));
    await copyFile(fixture('mnist', 'mnist.onnx'), join(base, 'outside', 'mnist.onnx'));
    await symlink(join(base, 'outside', 'mnist.onnx'), join(workspace, 'link.onnx'));
    server = await startServer({ port: 0, home: join(base, 'home'), workspace: [workspace], log: () => {} });
    const cookie = await signIn(server.port, server.token);
    const origin = `http://127.0.0.1:${server.port}`;
    ws = new WebSocket(`ws://127.0.0.1:${server.port}/rpc`, { headers: { cookie, origin } });
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  });
  after(async () => {
    ws?.close();
    await server?.close();
    await rm(base, { recursive: true, force: true });
  });

  test('app.info reports browser mode, the upload URL and the workspace', async () => {
    const info = await call('app.info', {});
    assert.equal(info.ok, true, JSON.stringify(info));
    const result = info.result as { mode: string; uploadUrl: string | null; workspace: string[] };
    assert.equal(result.mode, 'browser');
    assert.equal(result.uploadUrl, '/upload');
    assert.ok(result.workspace.includes(server.workspace[0]!), JSON.stringify(result.workspace));
  });

  test('models.open and models.inspect refuse a model outside the workspace and uploads', async () => {
    const outside = [join(base, 'outside', 'mnist.onnx'), join(workspace, '..', 'outside', 'mnist.onnx'), join(server.home, 'whittle.db'), join(workspace, 'link.onnx')];
    for (const method of ['models.open', 'models.inspect']) {
      for (const path of outside) {
        const reply = await call(method, { path });
        assert.equal(reply.ok, false, `${method} ${path}`);
        assert.equal(reply.error?.code, 'BAD_INPUT', JSON.stringify(reply));
      }
    }
    const inside = await call('models.inspect', { path: join(workspace, 'mnist.onnx') });
    assert.equal(inside.ok, true, JSON.stringify(inside));
  });

  test('an uploaded model opens', async () => {
    const origin = `http://127.0.0.1:${server.port}`;
    const cookie = await signIn(server.port, server.token);
    const bytes = await readFile(fixture('mnist', 'mnist.onnx'));
    const up = await post(server.port, '/upload?name=mnist.onnx', { cookie, origin, 'x-whittle-upload': '1' }, bytes);
    assert.equal(up.status, 200, up.body);
    const path = (JSON.parse(up.body) as { path: string }).path;
    const opened = await call('models.open', { path });
    assert.equal(opened.ok, true, JSON.stringify(opened));
    assert.equal((opened.result as { format: string }).format, 'onnx');
  });
});
