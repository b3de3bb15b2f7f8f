import assert from 'node:assert/strict';
import { captureIo } from '../testing.ts';
import { test } from 'node:test';
import { main } from '../main.ts';
import { renderDevices } from './devices.ts';


test('whittle devices --json prints exactly the report', async () => {
  const io = captureIo();
  assert.equal(await main(['devices', '--json'], io), 0);
  const report = JSON.parse(io.out);
  assert.equal(io.out.trim().split('\n').length, 1);
  assert.ok(Array.isArray(report.providers) && Array.isArray(report.adapters));
  for (const p of report.providers) assert.deepEqual(Object.keys(p).slice(0, 4), ['name', 'runtime', 'available', 'reason']);
  assert.equal(report.providers.find((p: { name: string }) => p.name === 'cpu').available, true);
});

test('whittle devices prints a table and a reason line per unusable provider', async () => {
  const io = captureIo();
  assert.equal(await main(['devices'], io), 0);
  assert.match(io.out, /^provider\s+runtime\s+usable/m);
  assert.match(io.out, /^cpu\s+onnxruntime\s+yes\s+CPU: /m);
  assert.match(io.out, /^int8 on this CPU: onnxruntime's (u8×s8 kernels saturate 8-bit weights|int8 kernels are exact)/m);
  const json = captureIo();
  await main(['devices', '--json'], json);
  for (const p of JSON.parse(json.out).providers) if (!p.available) assert.ok(io.out.includes(`\n${p.name}: `), p.name);
});

test('long reasons are broken into one line per blocker', () => {
  const text = renderDevices({
    providers: [{ name: 'cuda', runtime: 'onnxruntime', available: false, reason: 'binaries missing (a, b); opt in with: npm rebuild x; runtime not found (libcudart.so.12; found libcudart.so.13)' }],
    adapters: [{ backend: 'vulkan', vendor: 'nvidia', name: 'NVIDIA H100' }],
    adaptersReason: null,
    onnxruntimeNode: '1.30.0',
  });
  assert.ok(text.includes('cuda: binaries missing (a, b)\n      opt in with: npm rebuild x\n      runtime not found (libcudart.so.12; found libcudart.so.13)\n'), text);
  assert.match(text, /^vulkan\s+nvidia\s+NVIDIA H100$/m);
});

test('whittle devices rejects arguments with exit 2', async () => {
  const io = captureIo();
  assert.equal(await main(['devices', 'gpu0'], io), 2);
  assert.match(io.err, /takes no arguments/);
});
