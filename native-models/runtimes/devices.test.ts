import assert from 'node:assert/strict';
import { test } from 'node:test';
import { findSharedLibrary } from './cuda.ts';
import { listDevices, tfjsProviders } from './devices.ts';

test('listDevices reports every provider with a reason for each unusable one', async () => {
  const report = await listDevices();
  assert.deepEqual(report.providers.map((p) => p.name), ['cpu', 'webgpu', 'cuda', 'tfjs-node-gpu', 'tfjs-node', 'tfjs']);
  for (const p of report.providers) {
    if (p.available) assert.equal(p.reason, null, p.name);
    else assert.ok(p.reason && !p.reason.includes('\n'), `${p.name} needs a one-line reason`);
  }
  const cpu = report.providers[0]!;
  assert.equal(cpu.available, true);
  assert.match(cpu.device ?? '', /^CPU: /);
  assert.match(report.onnxruntimeNode ?? '', /^\d+\.\d+\.\d+$/);
  assert.equal(report.adaptersReason === null, report.adapters.length > 0);
});

test('on a machine without the Vulkan loader, webgpu is unusable and says so', async (t) => {
  if (process.platform !== 'linux' || findSharedLibrary('libvulkan.so.1')) return t.skip('libvulkan.so.1 is present');
  const report = await listDevices();
  const webgpu = report.providers.find((p) => p.name === 'webgpu')!;
  assert.equal(webgpu.available, false);
  assert.equal(webgpu.reason, 'no GPU adapter (libvulkan.so.1 not found)');
  assert.deepEqual(report.adapters, []);
  assert.equal(report.adaptersReason, 'no GPU adapter (libvulkan.so.1 not found)');
});

test('without the CUDA EP binaries, cuda says how to opt in', async (t) => {
  const report = await listDevices();
  const cuda = report.providers.find((p) => p.name === 'cuda')!;
  if (cuda.available) return t.skip('CUDA EP usable here');
  if (process.platform === 'linux' && process.arch === 'x64' && /binaries not installed/.test(cuda.reason!)) {
    assert.match(cuda.reason!, /opt in with: npm rebuild onnxruntime-node --onnxruntime-node-install=cuda12/);
  }
});

test('TF.js backends are detected without loading them', () => {
  for (const p of tfjsProviders()) {
    assert.equal(p.runtime, 'tfjs');
    if (!p.available) assert.match(p.reason!, /^not installed \(npm install @tensorflow\//);
  }
});
