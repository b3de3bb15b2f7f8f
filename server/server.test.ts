import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { connect as connectTcp } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { MAX_MESSAGE_CHARS } from '../api/envelope.ts';
import { startServer, type RunningServer } from './server.ts';
import { createTestEngine, type TestEngine } from './test-engine.ts';

// The server against a stand-in engine that applies the real engine's readableRoots rule; the
// refusals are the point, so each test names what it refuses and why.

interface Reply { status: number; headers: Record<string, string | string[] | undefined>; body: string }

function request(port: number, path: string, options: { method?: string; headers?: Record<string, string>; body?: Buffer | string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers: options.headers ?? {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

type Connection = { ws: WebSocket; status?: undefined } | { status: number; ws?: undefined };

function connect(port: number, headers: Record<string, string>): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/rpc`, { headers });
    ws.once('open', () => resolve({ ws }));
    ws.once('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode ?? 0 });
      res.resume();
    });
    ws.once('error', reject);
  });
}

/** Sends one frame and waits for the next message. */
function exchange(ws: WebSocket, frame: string | Buffer, binary = false): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    ws.once('message', (data) => resolve(JSON.parse(String(data)) as Record<string, unknown>));
    ws.send(frame, { binary });
  });
}

describe('whittle serve', () => {
  let base: string;
  let home: string;
  let workspace: string;
  let outside: string;
  let renderer: string;
  let server: RunningServer;
  let engine: TestEngine;
  let cookie: string;
  let origin: string;

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'whittle-serve-'));
    home = join(base, 'home');
    workspace = join(base, 'workspace');
    outside = join(base, 'outside');
    renderer = join(base, 'renderer');
    for (const d of [home, workspace, outside, join(renderer, 'assets')]) await mkdir(d, { recursive: true });
    await writeFile(join(workspace, 'inside.onnx'), 'in');
    await writeFile(join(outside, 'secret.onnx'), 'secret');
    await writeFile(join(home, 'whittle.db'), 'db');
    await writeFile(join(renderer, 'index.html'), '<!doctype html><title>app</title>');
    await writeFile(join(renderer, 'assets', 'app-1234.js'), 'console.log(1)');
    server = await startServer({
      port: 0, home, workspace: [workspace], rendererDir: renderer, maxUploadBytes: 1024, heartbeatMs: 60_000,
      createEngine: (options) => (engine = createTestEngine(options)), log: () => {},
    });
    origin = `http://127.0.0.1:${server.port}`;
    const signIn = await request(server.port, `/?token=${server.token}`);
    cookie = String(signIn.headers['set-cookie']?.[0]).split(';')[0]!;
  });
  after(async () => {
    await server?.close();
    await rm(base, { recursive: true, force: true });
  });

  test('prints a URL with a 64-hex-digit token on 127.0.0.1 and hands the engine its folders', () => {
    assert.match(server.url, new RegExp(`^http://127\\.0\\.0\\.1:${server.port}/\\?token=[0-9a-f]{64}$`));
    assert.equal(engine.options.mode, 'browser');
    assert.deepEqual(engine.options.readableRoots, [join(server.home, 'uploads'), server.workspace[0]]);
    assert.equal(engine.options.uploadUrl, '/upload');
  });

  test('refuses every request without the token or the session cookie', async () => {
    for (const path of ['/', '/index.html', '/assets/app-1234.js', '/files/artifacts/x', '/rpc']) {
      const r = await request(server.port, path);
      assert.equal(r.status, 401, path);
      assert.match(r.body, /whittle serve/);
      assert.match(r.body, /token=/);
    }
    const upload = await request(server.port, '/upload?name=a.onnx', { method: 'POST', headers: { 'x-whittle-upload': '1', origin }, body: 'x' });
    assert.equal(upload.status, 401);
    assert.equal((JSON.parse(upload.body) as { error: { code: string } }).error.code, 'BAD_USAGE');
    const forged = await request(server.port, '/', { headers: { cookie: `whittle_session=${'0'.repeat(64)}` } });
    assert.equal(forged.status, 401, 'a made-up session id');
  });

  test('refuses a wrong token and sets no cookie', async () => {
    const r = await request(server.port, `/?token=${'f'.repeat(64)}`);
    assert.equal(r.status, 401);
    assert.equal(r.headers['set-cookie'], undefined);
    const short = await request(server.port, `/?token=${server.token.slice(0, 10)}`);
    assert.equal(short.status, 401);
  });

  test('swaps the right token for an HttpOnly SameSite=Strict cookie and redirects to the same path without it', async () => {
    const r = await request(server.port, `/models/view?x=1&token=${server.token}`);
    assert.equal(r.status, 302);
    assert.equal(r.headers.location, '/models/view?x=1');
    const set = String(r.headers['set-cookie']?.[0]);
    assert.match(set, /^whittle_session=[0-9a-f]{64}; HttpOnly; SameSite=Strict; Path=\/$/);
    assert.notEqual(set.split(';')[0], cookie, 'each sign-in gets its own session');
    const sneaky = await request(server.port, `//evil.example/?token=${server.token}`);
    assert.equal(sneaky.headers.location, '/', 'no redirect to another site');
  });

  test('with the cookie, serves the app with a strict CSP and no CORS headers', async () => {
    const page = await request(server.port, '/', { headers: { cookie } });
    assert.equal(page.status, 200);
    assert.match(page.body, /<title>app<\/title>/);
    const csp = String(page.headers['content-security-policy']);
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, new RegExp(`connect-src 'self' ws://127\\.0\\.0\\.1:${server.port}`));
    assert.match(csp, /frame-ancestors 'none'/);
    assert.equal(page.headers['x-content-type-options'], 'nosniff');
    assert.equal(page.headers['referrer-policy'], 'no-referrer');
    const asset = await request(server.port, '/assets/app-1234.js', { headers: { cookie } });
    assert.equal(asset.status, 200);
    assert.match(String(asset.headers['content-type']), /javascript/);
    const route = await request(server.port, '/experiments', { headers: { cookie } });
    assert.match(route.body, /<title>app<\/title>/, 'app routes get the app');
    assert.equal((await request(server.port, '/favicon.ico', { headers: { cookie } })).status, 204, 'no favicon: no console error');
    const missing = await request(server.port, '/assets/nope.js', { headers: { cookie } });
    assert.equal(missing.status, 404);
    const climb = await request(server.port, '/assets/..%2f..%2fhome/whittle.db', { headers: { cookie } });
    assert.equal(climb.status, 400);
    for (const r of [page, asset, route, missing]) {
      assert.equal(Object.keys(r.headers).some((h) => h.startsWith('access-control-')), false);
    }
  });

  test('answers OPTIONS (a CORS preflight) and other methods with 405', async () => {
    const pre = await request(server.port, '/upload', { method: 'OPTIONS', headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST' } });
    assert.equal(pre.status, 405);
    assert.equal(pre.headers['access-control-allow-origin'], undefined);
    assert.equal((await request(server.port, '/', { method: 'PUT', headers: { cookie } })).status, 405);
    assert.equal((await request(server.port, '/', { method: 'POST', headers: { cookie } })).status, 405);
  });

  test('refuses a Host header that does not name this server (DNS rebinding)', async () => {
    for (const host of [`evil.example:${server.port}`, `127.0.0.1:${server.port + 1}`, 'evil.example']) {
      const r = await request(server.port, '/', { headers: { cookie, host } });
      assert.equal(r.status, 421, host);
    }
    const ws = await connect(server.port, { cookie, host: `evil.example:${server.port}`, origin: `http://evil.example:${server.port}` });
    assert.equal(ws.status, 421);
    const byName = await request(server.port, '/', { headers: { cookie, host: `localhost:${server.port}` } });
    assert.equal(byName.status, 200, 'localhost is this server too');
  });

  test('refuses WebSocket upgrades without the cookie, or with a missing or foreign Origin', async () => {
    assert.equal((await connect(server.port, { origin })).status, 401);
    assert.equal((await connect(server.port, { cookie })).status, 403, 'no Origin');
    assert.equal((await connect(server.port, { cookie, origin: 'http://evil.example' })).status, 403);
    assert.equal((await connect(server.port, { cookie, origin: `http://localhost:${server.port}` })).status, 403, 'Origin must match the Host');
    assert.equal((await connect(server.port, { cookie, origin: 'null' })).status, 403);
  });

  test('a WebSocket call round-trips, and pushes reach the socket', async () => {
    const c = await connect(server.port, { cookie, origin });
    assert.ok(c.ws);
    const reply = await exchange(c.ws, JSON.stringify({ id: 7, method: 'app.info', params: {} }));
    assert.equal(reply.id, 7);
    assert.equal(reply.ok, true);
    assert.equal((reply.result as { mode: string }).mode, 'browser');
    const pushed = new Promise<unknown>((resolve) => c.ws.once('message', (d) => resolve(JSON.parse(String(d)))));
    engine.emit({ event: 'experiments.changed', payload: { runId: null } });
    assert.deepEqual(await pushed, { event: 'experiments.changed', payload: { runId: null } });
    c.ws.close();
  });

  test('malformed frames get an error reply with id null and the server keeps going', async () => {
    const c = await connect(server.port, { cookie, origin });
    assert.ok(c.ws);
    const cases: [string | Buffer, boolean, RegExp][] = [
      ['not json', false, /not JSON/],
      [Buffer.from([1, 2, 3]), true, /binary/],
      ['x'.repeat(MAX_MESSAGE_CHARS + 1), false, /over the .* limit/],
      ['{"method":"app.info"}', false, /not a request envelope/],
      ['[]', false, /not a request envelope/],
    ];
    for (const [frame, binary, message] of cases) {
      const reply = await exchange(c.ws, frame, binary);
      assert.equal(reply.id, null);
      assert.equal(reply.ok, false);
      assert.match((reply.error as { message: string }).message, message);
    }
    const unknown = await exchange(c.ws, JSON.stringify({ id: 'u', method: 'no.such', params: {} }));
    assert.deepEqual(unknown.error, { code: 'BAD_USAGE', message: 'unknown method "no.such"' });
    const still = await exchange(c.ws, JSON.stringify({ id: 1, method: 'settings.get' }));
    assert.equal(still.ok, true, 'the same socket still answers');
    // A frame far over ws's payload limit closes that socket only.
    const closed = new Promise<number>((resolve) => c.ws.once('close', (code) => resolve(code)));
    c.ws.send('y'.repeat(5 * MAX_MESSAGE_CHARS));
    assert.equal(await closed, 1009);
    assert.equal((await request(server.port, '/', { headers: { cookie } })).status, 200, 'the server still serves');
  });

  test('models.open and models.inspect refuse paths outside the workspace and uploads', async () => {
    const c = await connect(server.port, { cookie, origin });
    assert.ok(c.ws);
    for (const method of ['models.open', 'models.inspect']) {
      for (const path of [join(outside, 'secret.onnx'), join(workspace, '..', 'outside', 'secret.onnx'), join(home, 'whittle.db')]) {
        const reply = await exchange(c.ws, JSON.stringify({ id: 1, method, params: { path } }));
        assert.equal(reply.ok, false, `${method} ${path}`);
        assert.equal((reply.error as { code: string }).code, 'BAD_INPUT');
      }
    }
    await symlink(join(outside, 'secret.onnx'), join(workspace, 'link.onnx'));
    const viaLink = await exchange(c.ws, JSON.stringify({ id: 2, method: 'models.open', params: { path: join(workspace, 'link.onnx') } }));
    assert.equal((viaLink.error as { code: string }).code, 'BAD_INPUT', 'a symlink out of the workspace');
    const inside = await exchange(c.ws, JSON.stringify({ id: 3, method: 'models.open', params: { path: join(workspace, 'inside.onnx') } }));
    assert.equal(inside.ok, true);
    c.ws.close();
  });

  const upload = (query: string, body: string | Buffer, headers: Record<string, string> = {}) =>
    request(server.port, `/upload?${query}`, { method: 'POST', body, headers: { cookie, origin, 'x-whittle-upload': '1', ...headers } });

  test('refuses uploads without the header, from another origin, or with unsafe names', async () => {
    const noHeader = await request(server.port, '/upload?name=a.onnx', { method: 'POST', body: 'x', headers: { cookie, origin } });
    assert.equal(noHeader.status, 403);
    assert.match(noHeader.body, /X-Whittle-Upload/);
    assert.equal((await upload('name=a.onnx', 'x', { origin: 'http://evil.example' })).status, 403);
    const noOrigin = await request(server.port, '/upload?name=a.onnx', { method: 'POST', body: 'x', headers: { cookie, 'x-whittle-upload': '1' } });
    assert.equal(noOrigin.status, 403);
    for (const name of ['..', '../escape.onnx', '..%2fescape.onnx', 'a%2fb.onnx', 'a%5cb.onnx', 'a%00b', '']) {
      const r = await upload(`name=${name}`, 'x');
      assert.equal(r.status, 400, name);
    }
    assert.equal((await upload('name=a.onnx&group=..', 'x')).status, 400);
    assert.deepEqual(await readdir(join(server.home, 'uploads')), [], 'nothing was written');
    assert.deepEqual((await readdir(base)).sort(), ['home', 'outside', 'renderer', 'workspace']);
  });

  test('refuses uploads over the size limit, declared or streamed', async () => {
    const declared = await upload('name=big.onnx', Buffer.alloc(2048));
    assert.equal(declared.status, 413);
    const streamed = await new Promise<number>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: server.port, path: '/upload?name=big.onnx&group=g1', method: 'POST', headers: { cookie, origin, 'x-whittle-upload': '1', 'transfer-encoding': 'chunked' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.write(Buffer.alloc(800));
      setTimeout(() => req.end(Buffer.alloc(800)), 20);
    });
    assert.equal(streamed, 413);
    const left = await readdir(join(server.home, 'uploads', 'g1')).catch(() => []);
    assert.deepEqual(left, [], 'the partial file is removed');
  });

  test('uploads land in one folder per group and open as models; write errors are reported', async () => {
    const first = await upload('name=model.json&group=tfjs1', '{"modelTopology":{}}');
    assert.equal(first.status, 200);
    const second = await upload('name=group1-shard1of1.bin&group=tfjs1', Buffer.from([1, 2, 3]));
    const a = JSON.parse(first.body) as { path: string };
    const b = JSON.parse(second.body) as { path: string };
    assert.equal(a.path, join(server.home, 'uploads', 'tfjs1', 'model.json'));
    assert.equal(dirname(b.path), dirname(a.path));
    assert.deepEqual([...(await readFile(b.path))], [1, 2, 3]);
    const named = await upload(`name=${encodeURIComponent('résumé net.onnx')}`, 'onnx');
    const uploaded = (JSON.parse(named.body) as { path: string }).path;
    assert.match(uploaded, /résumé net\.onnx$/);

    const c = await connect(server.port, { cookie, origin });
    assert.ok(c.ws);
    const opened = await exchange(c.ws, JSON.stringify({ id: 1, method: 'models.open', params: { path: uploaded } }));
    assert.equal(opened.ok, true, JSON.stringify(opened));
    assert.equal((opened.result as { path: string }).path, uploaded);
    c.ws.close();

    await writeFile(join(server.home, 'uploads', 'blocked'), 'a file where the group folder would go');
    const failed = await upload('name=x.onnx&group=blocked', 'x');
    assert.equal(failed.status, 500);
    assert.match((JSON.parse(failed.body) as { error: { message: string } }).error.message, /could not store the upload x\.onnx/);
  });

  test('downloads only files inside artifacts/ and exports/, as attachments', async () => {
    const artifact = join(server.home, 'artifacts', 'run1', 'model q.onnx');
    await mkdir(dirname(artifact), { recursive: true });
    await writeFile(artifact, 'artifact bytes');
    const url = engine.options.fileUrl!(artifact);
    assert.equal(url, '/files/artifacts/run1/model%20q.onnx');
    assert.equal(engine.options.fileUrl!(join(server.home, 'whittle.db')), null);
    assert.equal(engine.options.fileUrl!(join(outside, 'secret.onnx')), null);

    const ok = await request(server.port, url!, { headers: { cookie } });
    assert.equal(ok.status, 200);
    assert.equal(ok.body, 'artifact bytes');
    assert.match(String(ok.headers['content-disposition']), /^attachment; filename="model q\.onnx"/);
    assert.equal((await request(server.port, url!)).status, 401, 'downloads need the cookie too');

    await symlink(join(outside, 'secret.onnx'), join(server.home, 'artifacts', 'run1', 'leak.onnx'));
    await symlink(outside, join(server.home, 'exports', 'leakdir'));
    const refusals: [string, number][] = [
      ['/files/whittle.db', 404],
      ['/files/uploads/tfjs1/model.json', 404],
      ['/files/artifacts/../whittle.db', 400],
      ['/files/artifacts/..%2fwhittle.db', 400],
      ['/files/artifacts/..%2F..%2Foutside%2Fsecret.onnx', 400],
      ['/files/%2e%2e/whittle.db', 400],
      ['/files/artifacts/run1%2f..%2f..%2fwhittle.db', 400],
      ['/files/artifacts/%zz', 400],
      ['/files/artifacts/run1/leak.onnx', 403],
      ['/files/exports/leakdir/secret.onnx', 403],
      ['/files/artifacts/run1', 404],
      ['/files/artifacts', 404],
    ];
    for (const [path, status] of refusals) {
      const r = await request(server.port, path, { headers: { cookie } });
      assert.equal(r.status, status, path);
      assert.doesNotMatch(r.body, /secret|^db$/, path);
    }
  });

  test('closing the server closes its sockets and the engine', async () => {
    const c = await connect(server.port, { cookie, origin });
    assert.ok(c.ws);
    const closed = new Promise<number>((resolve) => c.ws.once('close', (code) => resolve(code)));
    await server.close();
    assert.equal(await closed, 1001);
    assert.equal(engine.closed, true);
    await assert.rejects(request(server.port, '/', { headers: { cookie } }));
  });
});

describe('whittle serve without a built app', () => {
  test('answers / with 503 and says to run npm run build', async () => {
    const base = await mkdtemp(join(tmpdir(), 'whittle-serve-nobuild-'));
    const server = await startServer({ port: 0, home: join(base, 'home'), rendererDir: join(base, 'missing'), createEngine: createTestEngine, log: () => {} });
    try {
      const signIn = await request(server.port, `/?token=${server.token}`);
      const cookie = String(signIn.headers['set-cookie']?.[0]).split(';')[0]!;
      const r = await request(server.port, '/', { headers: { cookie } });
      assert.equal(r.status, 503);
      assert.match(r.body, /npm run build/);
    } finally {
      await server.close();
      await rm(base, { recursive: true, force: true });
    }
  });
});

describe('whittle serve heartbeat', () => {
  test('drops a WebSocket whose peer stops answering pings', async () => {
    const base = await mkdtemp(join(tmpdir(), 'whittle-serve-ping-'));
    const server = await startServer({ port: 0, home: join(base, 'home'), rendererDir: base, heartbeatMs: 100, createEngine: createTestEngine, log: () => {} });
    try {
      const signIn = await request(server.port, `/?token=${server.token}`);
      const cookie = String(signIn.headers['set-cookie']?.[0]).split(';')[0]!;
      // A raw socket that completes the handshake and then never reads a frame: a dead peer.
      const socket = connectTcp(server.port, '127.0.0.1');
      socket.write([
        'GET /rpc HTTP/1.1', `Host: 127.0.0.1:${server.port}`, 'Upgrade: websocket', 'Connection: Upgrade',
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13', `Origin: http://127.0.0.1:${server.port}`, `Cookie: ${cookie}`, '', '',
      ].join('\r\n'));
      const head = await new Promise<string>((resolve) => socket.once('data', (d: Buffer) => resolve(d.toString('latin1'))));
      assert.match(head, /^HTTP\/1\.1 101/);
      const started = Date.now();
      await new Promise((resolve) => socket.once('close', resolve));
      assert.ok(Date.now() - started < 2000, 'closed within a few heartbeats');
    } finally {
      await server.close();
      await rm(base, { recursive: true, force: true });
    }
  });
});
