import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  contentSecurityPolicy, isAllowedHost, isLoopbackHost, isSameOrigin, newSecret, parseHostHeader, readCookie,
  secretsEqual, sessionCookieHeader, uploadGroupProblem, uploadNameProblem,
} from './security.ts';
import { attachmentDisposition, fileUrlFor } from './files.ts';

test('secrets are 32 random bytes of hex and compare only when equal', () => {
  const a = newSecret();
  assert.match(a, /^[0-9a-f]{64}$/);
  assert.notEqual(a, newSecret());
  assert.equal(secretsEqual(a, a), true);
  assert.equal(secretsEqual(a.slice(0, 63), a), false);
  assert.equal(secretsEqual('', a), false);
  assert.equal(secretsEqual(a.toUpperCase(), a), false);
});

test('Host headers: loopback binds answer to localhost names on the bound port only', () => {
  const rule = { boundHost: '127.0.0.1', port: 7400 };
  for (const ok of ['127.0.0.1:7400', 'localhost:7400', 'LOCALHOST:7400', '[::1]:7400']) assert.equal(isAllowedHost(ok, rule), true, ok);
  for (const bad of [undefined, '', 'evil.example:7400', '127.0.0.1:7401', '127.0.0.1', 'localhost.:7400', '127.0.0.1:7400:1', '10.0.0.5:7400', 'localhost:7400/x'])
    assert.equal(isAllowedHost(bad, rule), false, String(bad));
});

test('Host headers: a specific address answers to itself, a wildcard bind to IP literals and named hosts', () => {
  assert.equal(isAllowedHost('10.0.0.5:80', { boundHost: '10.0.0.5', port: 80 }), true);
  assert.equal(isAllowedHost('10.0.0.5', { boundHost: '10.0.0.5', port: 80 }), true, 'browsers leave out port 80');
  assert.equal(isAllowedHost('localhost:80', { boundHost: '10.0.0.5', port: 80 }), false);
  const wildcard = { boundHost: '0.0.0.0', port: 7400, extraNames: ['gpu-box'] };
  for (const ok of ['192.168.1.9:7400', '[fe80::1]:7400', 'gpu-box:7400', 'GPU-BOX:7400']) assert.equal(isAllowedHost(ok, wildcard), true, ok);
  for (const bad of ['evil.example:7400', 'gpu-box.evil.example:7400', '192.168.1.9:7401']) assert.equal(isAllowedHost(bad, wildcard), false, bad);
});

test('parseHostHeader takes names, IPv6 literals and ports apart', () => {
  assert.deepEqual(parseHostHeader('[::1]:7400'), { name: '::1', port: 7400 });
  assert.deepEqual(parseHostHeader('Example:81'), { name: 'example', port: 81 });
  assert.equal(parseHostHeader('[::1'), null);
  assert.equal(parseHostHeader('a:b'), null);
  assert.equal(parseHostHeader('a b:1'), null);
  assert.equal(isLoopbackHost('127.1.2.3'), true);
  assert.equal(isLoopbackHost('0.0.0.0'), false);
});

test('the Origin must be exactly this server as the page saw it', () => {
  assert.equal(isSameOrigin('http://127.0.0.1:7400', '127.0.0.1:7400'), true);
  assert.equal(isSameOrigin(undefined, '127.0.0.1:7400'), false);
  assert.equal(isSameOrigin('null', '127.0.0.1:7400'), false);
  assert.equal(isSameOrigin('http://localhost:7400', '127.0.0.1:7400'), false);
  assert.equal(isSameOrigin('http://127.0.0.1:3000', '127.0.0.1:7400'), false);
  assert.equal(isSameOrigin('https://127.0.0.1:7400', '127.0.0.1:7400'), false);
});

test('cookies: the session cookie is HttpOnly, SameSite=Strict, and read back by name', () => {
  assert.equal(sessionCookieHeader('abc'), 'whittle_session=abc; HttpOnly; SameSite=Strict; Path=/');
  assert.equal(readCookie('a=1; whittle_session=xyz; b=2', 'whittle_session'), 'xyz');
  assert.equal(readCookie('xwhittle_session=1', 'whittle_session'), null);
  assert.equal(readCookie(undefined, 'whittle_session'), null);
});

test('the CSP allows only this origin, its WebSocket, and inline styles', () => {
  const csp = contentSecurityPolicy('127.0.0.1:7400');
  for (const part of ["default-src 'self'", "connect-src 'self' ws://127.0.0.1:7400", "img-src 'self' data: blob:", "style-src 'self' 'unsafe-inline'", "script-src 'self'", "frame-ancestors 'none'"])
    assert.ok(csp.includes(part), part);
  assert.ok(!/script-src[^;]*unsafe/.test(csp));
  assert.match(contentSecurityPolicy("evil; script-src *"), /connect-src 'self';/, 'a malformed Host is not echoed');
});

test('upload names are used as given or refused, never cleaned up', () => {
  for (const ok of ['model.json', 'group1-shard1of2.bin', 'résumé net.onnx', '.hidden']) assert.equal(uploadNameProblem(ok), null, ok);
  for (const bad of [null, '', '.', '..', '../x.onnx', 'a/b.onnx', 'a\\b.onnx', 'x..onnx', 'a\0b', 'a\nb', 'C:x', ' lead', 'x'.repeat(256)])
    assert.notEqual(uploadNameProblem(bad), null, String(bad));
  assert.equal(uploadGroupProblem('a1_B-2'), null);
  for (const bad of ['', '..', 'a/b', 'x'.repeat(65), 'a b']) assert.notEqual(uploadGroupProblem(bad), null, bad);
});

test('fileUrl maps artifacts and exports to /files/ URLs and everything else to null', () => {
  const home = '/data/whittle';
  assert.equal(fileUrlFor(home, '/data/whittle/artifacts/r1/model q.onnx'), '/files/artifacts/r1/model%20q.onnx');
  assert.equal(fileUrlFor(home, '/data/whittle/exports/r1/report#1.html'), '/files/exports/r1/report%231.html');
  assert.equal(fileUrlFor(home, '/data/whittle/whittle.db'), null);
  assert.equal(fileUrlFor(home, '/data/whittle/artifacts'), null);
  assert.equal(fileUrlFor(home, '/data/whittle/artifacts/../whittle.db'), null);
  assert.equal(fileUrlFor(home, '/data/whittle/artifacts-old/x'), null);
  assert.equal(fileUrlFor(home, '/etc/passwd'), null);
});

test('attachment names survive quotes and non-ASCII', () => {
  assert.equal(attachmentDisposition('a"b é.onnx'), `attachment; filename="a_b _.onnx"; filename*=UTF-8''a%22b%20%C3%A9.onnx`);
});
