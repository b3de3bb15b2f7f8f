import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { findSharedLibrary } from './cuda.ts';
import { adapterName, explainNoAdapter, probeOrtWebGpu, probeWebGpuAdapters, runChildProbe } from './gpu-probe.ts';

// What Dawn (inside onnxruntime-node 1.30 and inside npm `webgpu` 0.6) prints on a Linux machine
// without the Vulkan loader, and what onnxruntime then throws.
const VULKAN_MISSING = `Warning: Couldn't load Vulkan: libvulkan.so.1: cannot open shared object file: No such file or directory
    at operator() (/build/Release/_deps/dawn-src/src/dawn/native/vulkan/BackendVk.cpp:368)
`;
const ORT_NO_ADAPTER = `/onnxruntime_src/onnxruntime/core/providers/webgpu/webgpu_context.cc:136 onnxruntime::webgpu::WebGpuContext::Initialize(const onnxruntime::webgpu::WebGpuContextConfig&)::<lambda()> adapter_result.status == wgpu::RequestAdapterStatus::Success was false. Failed to get a WebGPU adapter: No supported adapters
`;

describe('explainNoAdapter', () => {
  test('names the missing Vulkan loader', () => {
    assert.equal(explainNoAdapter(VULKAN_MISSING, ORT_NO_ADAPTER), 'no GPU adapter (libvulkan.so.1 not found)');
  });
  test('passes on another Dawn warning when there is one', () => {
    assert.equal(explainNoAdapter('Warning: vkCreateInstance failed with VK_ERROR_INCOMPATIBLE_DRIVER\n', ORT_NO_ADAPTER), 'no GPU adapter (vkCreateInstance failed with VK_ERROR_INCOMPATIBLE_DRIVER)');
  });
  test('plain "no adapter" without a hint, and other failures condensed', () => {
    assert.equal(explainNoAdapter('', ORT_NO_ADAPTER), 'no GPU adapter');
    assert.equal(explainNoAdapter('', 'device lost\nwhile creating'), 'WebGPU failed to start: device lost while creating');
  });
});

describe('runChildProbe survives children that hang or crash', () => {
  const dir = mkdtempSync(join(tmpdir(), 'whittle-probe-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const script = (name: string, body: string) => {
    const p = join(dir, name);
    writeFileSync(p, body);
    return p;
  };

  test('an answer is the last stdout line as JSON', async () => {
    const r = await runChildProbe(script('ok.mjs', 'console.log("noise"); console.log(JSON.stringify({ ok: true, args: process.argv.slice(2) }));'), ['a', 'b'], 10_000);
    assert.deepEqual(r.answer, { ok: true, args: ['a', 'b'] });
    assert.equal(r.timedOut, false);
    assert.equal(r.exitCode, 0);
  });

  test('a hung child is killed at the timeout', async () => {
    const r = await runChildProbe(script('hang.mjs', 'setInterval(() => {}, 1000);'), [], 300);
    assert.equal(r.timedOut, true);
    assert.equal(r.answer, null);
    assert.equal(r.signal, 'SIGKILL');
  });

  test('a crashing child reports its signal', async () => {
    const r = await runChildProbe(script('crash.mjs', 'console.error("driver exploded"); process.kill(process.pid, "SIGSEGV");'), [], 10_000);
    assert.equal(r.timedOut, false);
    assert.equal(r.signal, 'SIGSEGV');
    assert.match(r.stderr, /driver exploded/);
  });
});

describe('probes of this machine', () => {
  test('the WebGPU EP probe answers once per process with a reason when unusable', async () => {
    const first = probeOrtWebGpu();
    assert.equal(probeOrtWebGpu(), first, 'cached');
    const s = await first;
    if (s.available) return assert.equal(s.reason, null);
    assert.match(s.reason ?? '', /^no GPU adapter|^WebGPU failed|^GPU probe/);
    if (process.platform === 'linux' && !findSharedLibrary('libvulkan.so.1')) assert.equal(s.reason, 'no GPU adapter (libvulkan.so.1 not found)');
  });

  test('the adapter probe lists adapters or says why there are none', async () => {
    const { adapters, reason } = await probeWebGpuAdapters();
    if (adapters.length > 0) {
      assert.equal(reason, null);
      for (const a of adapters) assert.ok(adapterName(a).length > 0);
      return;
    }
    assert.ok(reason && reason.length > 0);
    if (process.platform === 'linux' && !findSharedLibrary('libvulkan.so.1')) assert.equal(reason, 'no GPU adapter (libvulkan.so.1 not found)');
  });
});
