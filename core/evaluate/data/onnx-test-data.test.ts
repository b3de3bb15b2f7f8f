import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { fixture } from '../../testing/fixtures.ts';
import { decodeTensorProto, openDataset } from './index.ts';
import { assertFails, collect, tempDir } from './test-support.ts';

const SHUFFLENET = [{ name: 'input', dtype: 'float32' as const, shape: [1, 3, 224, 224] }];

// A tiny protobuf writer for hand-made TensorProtos.
function varint(v: bigint): number[] {
  let x = BigInt.asUintN(64, v);
  const out: number[] = [];
  do {
    const b = Number(x & 0x7fn);
    x >>= 7n;
    out.push(x > 0n ? b | 0x80 : b);
  } while (x > 0n);
  return out;
}
const key = (field: number, wire: number): number[] => varint(BigInt((field << 3) | wire));
const lenField = (field: number, bytes: number[] | Uint8Array): number[] => [...key(field, 2), ...varint(BigInt(bytes.length)), ...bytes];

test('shufflenet test_data_set_0: input [1,3,224,224] fed by position, expected output [1,1000]', async () => {
  const ds = await openDataset(fixture('shufflenet-int8', 'test_data_set_0'), SHUFFLENET);
  assert.equal(ds.kind, 'onnx-test-data');
  assert.equal(ds.n, 1);
  assert.equal(ds.hasLabels, false);
  assert.deepEqual(ds.expectedOutputs!.map((t) => [t.dtype, t.dims]), [['float32', [1, 1000]]]);
  const [b] = await collect(ds, 8);
  const x = b!.inputs.input!;
  assert.deepEqual([x.dtype, x.dims], ['float32', [1, 3, 224, 224]]);
  // raw_data holds little-endian floats right after the header fields: compare with the file's bytes.
  const file = await readFile(fixture('shufflenet-int8', 'test_data_set_0', 'input_0.pb'));
  const raw = file.subarray(file.length - 602112);
  assert.deepEqual(Buffer.from(x.data.buffer, x.data.byteOffset, x.data.byteLength), raw);
  assert.deepEqual(b!.expectedOutputs![0]!.data, ds.expectedOutputs![0]!.data);

  // The input file itself and the folder holding test_data_set_N open the same data.
  assert.equal((await openDataset(fixture('shufflenet-int8', 'test_data_set_0', 'input_0.pb'), SHUFFLENET)).n, 1);
  const parent = await openDataset(fixture('shufflenet-int8'), SHUFFLENET);
  assert.equal(parent.kind, 'onnx-test-data');
  assert.equal(parent.n, 1);
});

test('TensorProto reader: packed and unpacked dims, typed fields, int64 exact, float16 via int32_data', () => {
  const f32 = new Uint8Array(new Float32Array([1.5, -2]).buffer);
  const floats = decodeTensorProto(Uint8Array.from([
    ...key(1, 0), ...varint(2n), ...key(2, 0), 1, ...lenField(8, [...Buffer.from('x')]), ...lenField(4, f32),
  ]), 'floats.pb');
  assert.deepEqual([floats.name, floats.dtype, floats.dims, [...floats.data]], ['x', 'float32', [2], [1.5, -2]]);

  const int64 = decodeTensorProto(Uint8Array.from([
    ...lenField(1, [...varint(1n), ...varint(3n)]), ...key(2, 0), 7,
    ...lenField(7, [...varint(-5n), ...varint(2n ** 62n), ...varint(0n)]),
  ]), 'ids.pb');
  assert.deepEqual([int64.dtype, int64.dims, [...int64.data]], ['int64', [1, 3], [-5n, 2n ** 62n, 0n]]);

  const half = decodeTensorProto(Uint8Array.from([...key(1, 0), 2, ...key(2, 0), 10, ...key(5, 0), ...varint(0x3c00n), ...key(5, 0), ...varint(0xc000n)]), 'h.pb');
  assert.deepEqual([half.dtype, [...half.data]], ['float16', [0x3c00, 0xc000]]);

  const u8 = decodeTensorProto(Uint8Array.from([...key(1, 0), 3, ...key(2, 0), 2, ...lenField(9, [7, 8, 9])]), 'u8.pb');
  assert.deepEqual([u8.dtype, [...u8.data]], ['uint8', [7, 8, 9]]);
});

test('TensorProto and test-data problems are BAD_INPUT naming the file', async () => {
  assert.throws(() => decodeTensorProto(Uint8Array.from([...key(1, 0), 4, ...key(2, 0), 1, ...lenField(4, [0, 0, 0, 0])]), 'short.pb'),
    /short\.pb: .*float32\[4 elements\] needs 4 values in float_data but it holds 1/);
  assert.throws(() => decodeTensorProto(Uint8Array.from([...key(9, 2), 50, 1, 2]), 'cut.pb'), /cut\.pb: .*truncated/);

  const dir = await tempDir();
  const set = join(dir, 'test_data_set_0');
  await mkdir(set);
  await writeFile(join(set, 'input_0.pb'), await readFile(fixture('shufflenet-int8', 'test_data_set_0', 'input_0.pb')));
  await writeFile(join(set, 'input_2.pb'), Uint8Array.of());
  await assertFails(openDataset(dir, SHUFFLENET), set, 'BAD_INPUT', /input_2\.pb but no input_1\.pb/);

  await writeFile(join(set, 'input_2.pb'), Uint8Array.from([...key(1, 0), 1, ...key(2, 0), 1, ...lenField(4, [0, 0, 0, 0])]));
  await writeFile(join(set, 'input_1.pb'), Uint8Array.from([...key(1, 0), 1, ...key(2, 0), 1, ...lenField(4, [0, 0, 0, 0])]));
  await assertFails(openDataset(set, SHUFFLENET), set, 'BAD_INPUT', /3 input_N\.pb .* 1 input/);

  const wrongShape = [{ name: 'input', dtype: 'float32' as const, shape: [1, 3, 112, 112] }];
  await assertFails(openDataset(fixture('shufflenet-int8', 'test_data_set_0'), wrongShape), 'input_0.pb', 'BAD_INPUT', /\[1,3,224,224\]/);
});
