// Runs in a child process (see device.ts, and runtimes/gpu-probe.ts for why): finds a WebGPU
// adapter the compute kernels can use and proves it by running one compute shader, so a broken
// driver costs a probe, not the process that asks. Plain JavaScript: starts with bare node.
//
//   node compute-probe-child.mjs '{"backends":["vulkan"],"software":false}'
//     → {"adapters":[{backend, featureLevel, vendor, architecture, device, description, fallback, software, ok, error?, limits}], "errors": [...]}
//
// "software": also try Dawn's OpenGL ES backend in compatibility mode (Mesa's llvmpipe runs it on
// the CPU: too slow to be worth using, but it runs the WGSL, which is how CI can check the kernels).

const options = JSON.parse(process.argv[2] ?? '{}');

function reply(value) {
  process.stdout.write(JSON.stringify(value) + '\n');
  process.exit(0);
}

const SOFTWARE = /llvmpipe|lavapipe|softpipe|swiftshader|software|microsoft basic render/i;

async function tryAdapter(gpu, backend, featureLevel) {
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance', featureLevel });
  if (!adapter) return null;
  const i = adapter.info;
  const entry = {
    backend, featureLevel, vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description,
    fallback: Boolean(i.isFallbackAdapter), software: Boolean(i.isFallbackAdapter) || SOFTWARE.test(`${i.device} ${i.description} ${i.architecture}`),
    ok: false, limits: {},
  };
  for (const k of ['maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupStorageSize', 'maxComputeInvocationsPerWorkgroup', 'maxStorageBuffersPerShaderStage', 'maxComputeWorkgroupsPerDimension']) entry.limits[k] = adapter.limits[k];
  try {
    const device = await adapter.requestDevice();
    const code = `@group(0) @binding(0) var<storage, read_write> v: array<f32>;
      @compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) { if (g.x < arrayLength(&v)) { v[g.x] = v[g.x] * 2.0 + 1.0; } }`;
    const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module: device.createShaderModule({ code }), entryPoint: 'main' } });
    const n = 256;
    const buf = device.createBuffer({ size: n * 4, usage: 128 | 4 | 8, mappedAtCreation: true }); // STORAGE | COPY_SRC | COPY_DST
    new Float32Array(buf.getMappedRange()).set(Float32Array.from({ length: n }, (_, k) => k));
    buf.unmap();
    const read = device.createBuffer({ size: n * 4, usage: 1 | 8 }); // MAP_READ | COPY_DST
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: buf } }] }));
    pass.dispatchWorkgroups(n / 64);
    pass.end();
    enc.copyBufferToBuffer(buf, 0, read, 0, n * 4);
    device.queue.submit([enc.finish()]);
    await read.mapAsync(1);
    const out = new Float32Array(read.getMappedRange().slice(0));
    read.unmap();
    const bad = out.findIndex((v, k) => v !== k * 2 + 1);
    entry.ok = bad < 0;
    if (bad >= 0) entry.error = `a test compute shader gave ${out[bad]} instead of ${bad * 2 + 1}`;
    device.destroy();
  } catch (err) {
    entry.error = String(err?.message ?? err).split('\n')[0];
  }
  return entry;
}

let create;
try {
  ({ create } = await import('webgpu'));
} catch (err) {
  reply({ adapters: [], errors: [`the npm webgpu package cannot be loaded: ${String(err?.message ?? err).split('\n')[0]}`] });
}
const adapters = [];
const errors = [];
const attempts = (options.backends ?? ['vulkan']).map((b) => [b, 'core']);
if (options.software) attempts.push(['opengles', 'compatibility']);
for (const [backend, featureLevel] of attempts) {
  try {
    const entry = await tryAdapter(create([`backend=${backend}`]), backend, featureLevel);
    if (entry) adapters.push(entry);
  } catch (err) {
    errors.push(`${backend}: ${String(err?.message ?? err).split('\n')[0]}`);
  }
}
reply({ adapters, errors });
