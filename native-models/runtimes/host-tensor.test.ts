import assert from 'node:assert/strict';
import { test } from 'node:test';
import { float16BitsToNumber, hostTensorProblem, toFloatScores, type HostTensor } from './host-tensor.ts';
import { condenseOrtMessage } from './ort-messages.ts';

test('float16 bits decode like IEEE 754 half precision', () => {
  assert.equal(float16BitsToNumber(0x3c00), 1);
  assert.equal(float16BitsToNumber(0xc000), -2);
  assert.equal(float16BitsToNumber(0x3555), 0.333251953125);
  assert.equal(float16BitsToNumber(0x7bff), 65504);
  assert.equal(float16BitsToNumber(0x0001), 2 ** -24); // smallest subnormal
  assert.equal(float16BitsToNumber(0x0400), 2 ** -14); // smallest normal
  assert.equal(float16BitsToNumber(0x7c00), Infinity);
  assert.equal(float16BitsToNumber(0xfc00), -Infinity);
  assert.ok(Number.isNaN(float16BitsToNumber(0x7e00)));
  assert.ok(Object.is(float16BitsToNumber(0x8000), -0));
});

test('hostTensorProblem catches the wrong array type or length', () => {
  assert.equal(hostTensorProblem({ dtype: 'float32', dims: [2, 2], data: new Float32Array(4) }), null);
  assert.equal(hostTensorProblem({ dtype: 'float32', dims: [2, 2], data: new Float32Array(3) }), 'dims [2,2] need 4 elements, data has 3');
  const wrong = { dtype: 'int64', dims: [1], data: new Int32Array(1) } as unknown as HostTensor;
  assert.equal(hostTensorProblem(wrong), 'int64 data must be a BigInt64Array, got Int32Array');
});

test('toFloatScores widens every dtype to numbers', () => {
  assert.deepEqual(Array.from(toFloatScores({ dtype: 'float16', dims: [2], data: Uint16Array.from([0x3c00, 0xc000]) }).data), [1, -2]);
  assert.deepEqual(Array.from(toFloatScores({ dtype: 'int64', dims: [2], data: BigInt64Array.from([3n, -4n]) }).data), [3, -4]);
  const f32 = new Float32Array([0.5]);
  assert.equal(toFloatScores({ dtype: 'float32', dims: [1], data: f32 }).data, f32, 'float32 is not copied');
});

test('condenseOrtMessage keeps the reason, drops C++ locations, status prefixes and newlines', () => {
  const webgpu = '/onnxruntime_src/onnxruntime/core/providers/webgpu/webgpu_context.cc:136 onnxruntime::webgpu::WebGpuContext::Initialize(const onnxruntime::webgpu::WebGpuContextConfig&)::<lambda()> adapter_result.status == wgpu::RequestAdapterStatus::Success was false. Failed to get a WebGPU adapter: No supported adapters\n';
  assert.equal(condenseOrtMessage(webgpu), 'Failed to get a WebGPU adapter: No supported adapters');
  assert.equal(condenseOrtMessage('Load model from /tmp/x.onnx failed:Protobuf parsing failed.', '/tmp/x.onnx'), 'Protobuf parsing failed.');
  assert.equal(condenseOrtMessage('[ONNXRuntimeError] : 1 : FAIL : Node (n1) Op (Foo)\n  is bad'), 'Node (n1) Op (Foo) is bad');
});
