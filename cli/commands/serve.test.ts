import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createTestEngine } from '../../server/test-engine.ts';
import { main } from '../main.ts';
import { captureIo } from '../testing.ts';
import { startServe } from './serve.ts';

// The server is started in-process (startServe is `whittle serve` up to waiting for Ctrl+C), with
// the test engine, so these tests need neither a subprocess nor the real engine.
let base: string;
before(async () => {
  base = await mkdtemp(join(tmpdir(), 'whittle-serve-cli-'));
});
after(() => rm(base, { recursive: true, force: true }));

const overrides = () => ({ home: join(base, 'home'), rendererDir: join(base, 'no-renderer'), createEngine: createTestEngine });

function statusWithHost(port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers: { host } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

test('prints exactly one line on stdout, the URL with its token, and no warning on 127.0.0.1', async () => {
  const io = captureIo();
  const server = await startServe(['--port', '0', '--workspace', base], io, overrides());
  try {
    assert.match(io.out, new RegExp(`^Whittle is serving on http://127\\.0\\.0\\.1:${server.port}/\\?token=[0-9a-f]{64}\\n$`));
    assert.ok(io.out.includes(server.token));
    assert.doesNotMatch(io.err, /warning/);
    assert.match(io.err, /Ctrl\+C/);
  } finally {
    await server.close();
  }
});

test('--json prints {url, host, port, token} as one line', async () => {
  const io = captureIo();
  const server = await startServe(['--port', '0', '--json'], io, overrides());
  try {
    assert.equal(io.out.split('\n').length, 2);
    assert.deepEqual(JSON.parse(io.out), { url: server.url, host: '127.0.0.1', port: server.port, token: server.token });
  } finally {
    await server.close();
  }
});

test('--host 0.0.0.0 warns that anyone who can reach it with the token can read the workspace', async () => {
  const io = captureIo();
  const server = await startServe(['--host', '0.0.0.0', '--port', '0'], io, overrides());
  try {
    assert.match(io.err, /warning: listening on 0\.0\.0\.0.*anyone who can reach this address and has the token can read the workspace/);
    assert.match(io.out, /^Whittle is serving on http:\/\/0\.0\.0\.0:\d+\/\?token=[0-9a-f]{64}\n$/);
    // Bound to every interface it answers to IP literals, still not to other names.
    assert.equal(await statusWithHost(server.port, `10.1.2.3:${server.port}`), 401);
    assert.equal(await statusWithHost(server.port, `evil.example:${server.port}`), 421);
  } finally {
    await server.close();
  }
});

test('bad flags and missing workspace folders are usage errors (exit 2)', async () => {
  for (const argv of [['--port', 'x'], ['--port', '70000'], ['stray'], ['--workspace', join(base, 'missing')], ['--max-upload-bytes', '0']]) {
    const io = captureIo();
    assert.equal(await main(['serve', ...argv], io), 2, argv.join(' '));
    assert.match(io.err, /^whittle: /);
    assert.equal(io.out, '');
  }
});

test('a port in use is a clear error', async () => {
  const io = captureIo();
  const first = await startServe(['--port', '0'], io, overrides());
  try {
    await assert.rejects(startServe(['--port', String(first.port)], captureIo(), overrides()), /port \d+ on 127\.0\.0\.1 is in use/);
  } finally {
    await first.close();
  }
});
