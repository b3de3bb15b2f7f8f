// Runs in a child process (see gpu-probe.ts): a broken GPU driver can hang or crash inside Dawn or
// onnxruntime's WebGPU EP, and that must cost a probe, not the CLI or the job. Plain JavaScript so
// the child starts with bare node (no tsx) in a few hundred milliseconds.
//
//   node gpu-probe-child.mjs ort-webgpu          → {"ok":true} | {"ok":false,"message":"..."}
//   node gpu-probe-child.mjs adapters vulkan ...  → {"adapters":[{backend,vendor,architecture,device,description,fallback}]}
//
// The answer is the last line of stdout; Dawn's own warnings (e.g. "Couldn't load Vulkan") go to
// stderr, which the parent reads to explain a missing adapter.

const [mode, ...args] = process.argv.slice(2);

function reply(value) {
  process.stdout.write(JSON.stringify(value) + '\n');
  // Dawn and onnxruntime can keep handles open after a successful probe: leave explicitly.
  process.exit(0);
}

// --- a tiny ONNX model (y = Relu(x), x: float32 [4]) encoded by hand, so the probe needs no file ---
function varint(n) {
  const out = [];
  while (n > 0x7f) { out.push((n & 0x7f) | 0x80); n >>>= 7; }
  out.push(n);
  return out;
}
const field = (num, bytes) => [...varint((num << 3) | 2), ...varint(bytes.length), ...bytes];
const fieldInt = (num, n) => [...varint(num << 3), ...varint(n)];
const str = (s) => [...Buffer.from(s, 'utf8')];
function valueInfo(name) {
  const dim = field(1, fieldInt(1, 4)); // Dimension.dim_value = 4
  const tensorType = [...fieldInt(1, 1), ...field(2, dim)]; // elem_type FLOAT, shape [4]
  return [...field(1, str(name)), ...field(2, field(1, tensorType))];
}
function reluModel() {
  const node = [...field(1, str('x')), ...field(2, str('y')), ...field(4, str('Relu'))];
  const graph = [...field(1, node), ...field(2, str('probe')), ...field(11, valueInfo('x')), ...field(12, valueInfo('y'))];
  return Uint8Array.from([...fieldInt(1, 7), ...field(7, graph), ...field(8, fieldInt(2, 13))]);
}

async function probeOrtWebGpu() {
  let ort;
  try {
    ({ default: ort } = await import('onnxruntime-node'));
  } catch (err) {
    reply({ ok: false, message: `onnxruntime-node cannot be loaded: ${String(err?.message ?? err).split('\n')[0]}` });
  }
  try {
    const session = await ort.InferenceSession.create(reluModel(), { executionProviders: ['webgpu'] });
    const x = new ort.Tensor('float32', Float32Array.from([-1, 2, -3, 4]), [4]);
    const { y } = await session.run({ x });
    const ok = Array.from(y.data).join(',') === '0,2,0,4';
    reply(ok ? { ok: true } : { ok: false, message: `WebGPU EP computed Relu wrongly: ${Array.from(y.data)}` });
  } catch (err) {
    reply({ ok: false, message: String(err?.message ?? err) });
  }
}

async function probeAdapters(backends) {
  let create;
  try {
    ({ create } = await import('webgpu'));
  } catch (err) {
    reply({ adapters: [], errors: [`the npm webgpu package cannot be loaded: ${String(err?.message ?? err).split('\n')[0]}`] });
  }
  const adapters = [];
  const errors = [];
  for (const backend of backends) {
    try {
      const gpu = create([`backend=${backend}`]);
      for (const powerPreference of ['high-performance', 'low-power']) {
        const adapter = await gpu.requestAdapter({ powerPreference });
        if (!adapter) continue;
        const i = adapter.info;
        const entry = { backend, vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description, fallback: Boolean(i.isFallbackAdapter) };
        if (!adapters.some((a) => JSON.stringify(a) === JSON.stringify(entry))) adapters.push(entry);
      }
    } catch (err) {
      errors.push(`${backend}: ${String(err?.message ?? err).split('\n')[0]}`);
    }
  }
  reply({ adapters, errors });
}

if (mode === 'ort-webgpu') await probeOrtWebGpu();
else if (mode === 'adapters') await probeAdapters(args);
else reply({ error: `unknown probe mode: ${mode}` });
