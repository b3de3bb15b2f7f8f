import assert from 'node:assert/strict';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import {
  allowPermission, APP_ENTRY_URL, checkSender, CONTENT_SECURITY_POLICY, decideNavigation, decideWindowOpen,
  isAppPage, mimeType, resolveAppFile, safeExternalUrl, withSecurityHeaders,
} from './security.ts';

test('the CSP allows only our own origin for scripts and connections', () => {
  const directives = new Map(CONTENT_SECURITY_POLICY.split(';').map((d) => {
    const [name, ...values] = d.trim().split(/\s+/);
    return [name, values] as const;
  }));
  assert.deepEqual(directives.get('default-src'), ["'self'"]);
  assert.deepEqual(directives.get('script-src'), ["'self'"]);
  assert.deepEqual(directives.get('style-src'), ["'self'", "'unsafe-inline'"]);
  assert.deepEqual(directives.get('img-src'), ["'self'", 'data:', 'blob:']);
  assert.deepEqual(directives.get('connect-src'), ["'self'"]);
  assert.deepEqual(directives.get('object-src'), ["'none'"]);
  assert.ok(!CONTENT_SECURITY_POLICY.includes('unsafe-eval'));
});

test('our CSP replaces any the response carried, whatever its header case', () => {
  const out = withSecurityHeaders({ 'content-security-policy': ["default-src *"], 'Content-Type': 'text/html', 'X-Other': ['a', 'b'] });
  assert.equal(out['content-security-policy'], undefined);
  assert.deepEqual(out['Content-Security-Policy'], [CONTENT_SECURITY_POLICY]);
  assert.deepEqual(out['Content-Type'], ['text/html']);
  assert.deepEqual(out['X-Other'], ['a', 'b']);
  assert.deepEqual(out['X-Content-Type-Options'], ['nosniff']);
  assert.deepEqual(withSecurityHeaders(undefined)['Content-Security-Policy'], [CONTENT_SECURITY_POLICY]);
});

test('app:// URLs map to files inside the renderer folder and nowhere else', () => {
  const root = resolve('/srv/whittle/dist/renderer');
  assert.equal(resolveAppFile(root, 'app://whittle/'), join(root, 'index.html'));
  assert.equal(resolveAppFile(root, 'app://whittle/index.html'), join(root, 'index.html'));
  assert.equal(resolveAppFile(root, 'app://whittle/assets/index-abc.js?x=1#y'), join(root, 'assets', 'index-abc.js'));
  assert.equal(resolveAppFile(root, 'app://whittle/assets/a%20b.css'), join(root, 'assets', 'a b.css'));
  for (const bad of [
    'app://whittle/../secret',
    'app://whittle/%2e%2e/secret',
    'app://whittle/assets/%2e%2e/%2e%2e/secret',
    'app://whittle/..%2fsecret',
    'app://whittle/assets%2f..%2f..%2fsecret',
    'app://whittle/..%5csecret',
    'app://whittle/a%00b',
    'app://whittle/%E0%A4%A',
    'app://other/index.html',
    'app://user:pw@whittle/index.html',
    'file:///etc/passwd',
    'https://whittle/index.html',
    'not a url',
  ]) {
    const file = resolveAppFile(root, bad);
    assert.ok(file === null || file.startsWith(root + '/'), `${bad} → ${file}`);
  }
  // The URL parser itself resolves encoded dot segments: what is left stays inside the folder.
  assert.equal(resolveAppFile(root, 'app://whittle/%2e%2e/secret'), join(root, 'secret'));
  assert.equal(resolveAppFile(root, 'app://whittle/..%2fsecret'), null);
  assert.equal(resolveAppFile(root, 'app://other/index.html'), null);
});

test('content types for what the renderer bundle holds', () => {
  assert.match(mimeType('/x/index.html'), /^text\/html/);
  assert.match(mimeType('/x/a.JS'), /^text\/javascript/);
  assert.match(mimeType('/x/a.css'), /^text\/css/);
  assert.equal(mimeType('/x/a.svg'), 'image/svg+xml');
  assert.equal(mimeType('/x/a.bin'), 'application/octet-stream');
});

test('the window stays on the app page; http(s) links leave for the system browser', () => {
  assert.equal(isAppPage(APP_ENTRY_URL), true);
  assert.equal(isAppPage(`${APP_ENTRY_URL}#/experiments`), true);
  assert.equal(decideNavigation(APP_ENTRY_URL), 'allow');
  assert.equal(decideNavigation('app://whittle/assets/index.js'), 'deny');
  assert.equal(decideNavigation('app://evil/index.html'), 'deny');
  assert.equal(decideNavigation('https://onnx.ai/'), 'external');
  assert.equal(decideNavigation('http://localhost:8080/'), 'external');
  for (const url of ['file:///etc/passwd', 'javascript:alert(1)', 'data:text/html,<script>1</script>', 'chrome://settings', 'smb://host/share', 'about:blank', '']) {
    assert.equal(decideNavigation(url), 'deny', url);
    assert.equal(decideWindowOpen(url), 'deny', url);
  }
  assert.equal(decideWindowOpen(APP_ENTRY_URL), 'deny', 'no second app window');
  assert.equal(decideWindowOpen('https://github.com/onnx/onnx'), 'external');
});

test('external URLs are checked before the system browser gets them', () => {
  assert.equal(safeExternalUrl('https://onnx.ai/docs'), 'https://onnx.ai/docs');
  assert.equal(safeExternalUrl('https://good.example@evil.example/'), null);
  assert.equal(safeExternalUrl('https://user:pw@host/'), null);
  assert.equal(safeExternalUrl('https://'), null);
  assert.equal(safeExternalUrl('ftp://host/'), null);
  assert.equal(safeExternalUrl('https://host/' + 'a'.repeat(3000)), null);
  assert.equal(safeExternalUrl('https://host/a"onmouseover'), null);
});

test('every permission is refused', () => {
  for (const p of ['media', 'geolocation', 'notifications', 'clipboard-read', 'clipboard-sanitized-write', 'fullscreen', 'openExternal', 'hid', 'serial', 'usb']) {
    assert.equal(allowPermission(p, APP_ENTRY_URL), false, p);
  }
});

test('only the main frame of our window, showing our page, may call', () => {
  const good = { fromOurWindow: true, isMainFrame: true, frameUrl: APP_ENTRY_URL };
  assert.deepEqual(checkSender(good), { ok: true });
  assert.deepEqual(checkSender({ ...good, frameUrl: `${APP_ENTRY_URL}#/runs/1` }), { ok: true });
  assert.equal(checkSender({ ...good, fromOurWindow: false }).ok, false);
  assert.equal(checkSender({ ...good, isMainFrame: false }).ok, false);
  assert.equal(checkSender({ ...good, frameUrl: null }).ok, false);
  for (const url of ['https://evil.example/', 'file:///tmp/x.html', 'app://whittle/assets/x.html', 'app://evil/index.html', 'about:blank']) {
    const r = checkSender({ ...good, frameUrl: url });
    assert.equal(r.ok, false, url);
  }
});
