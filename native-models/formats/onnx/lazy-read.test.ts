/**
 * Reading an inline model with its big tensor payloads left in the file (ReadOptions.lazyTensors,
 * lazy-read.ts): the same model as an eager read, tensor for tensor and byte for byte when written
 * again; only the tensors the reader converts are left in the file (a function's tensors are real
 * bytes); a file that does not parse reads (and fails) exactly as before. Also the computed tensor
 * source the quantizers stream through the writer.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { inspectModel } from '../../../core/inspect.ts';
import { modelBytes } from '../../../core/evaluate/evaluate.ts';
import { DataType } from '../../ir/dtypes.ts';
import { AttrType, Graph, Model, Node, type ValueInfo } from '../../ir/model.ts';
import { seededRandom } from '../../ir/random.ts';
import { Tensor } from '../../ir/tensor.ts';
import { LAZY_MIN_BYTES } from './lazy-read.ts';
import { readOnnxFile } from './read.ts';
import { writeOnnxFile } from './write.ts';

const ROOT = mkdtempSync(join(tmpdir(), 'whittle-lazy-'));
after(() => rmSync(ROOT, { recursive: true, force: true }));

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const f32 = (shape: number[]): ValueInfo['type'] => ({ kind: 'tensor', elemType: DataType.FLOAT, shape });
const value = (name: string, type: ValueInfo['type']): ValueInfo => ({ name, type, extra: {} });

function random(n: number, seed: number): Float32Array {
  const rand = seededRandom(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rand() - 0.5;
  return out;
}

const BIG = LAZY_MIN_BYTES / 4 + 1001; // elements: just over the threshold, an odd byte count of padding before it
const FUNCTION_TENSOR = random(BIG, 9);

/**
 * Big payloads everywhere the reader looks (main initializer, Constant node, If subgraph initializer,
 * sparse initializer values) and where it does not (a model-local function's Constant), plus small
 * tensors that stay in memory.
 */
function model(): Model {
  const m = new Model();
  m.irVersion = 8;
  m.opsets = [{ domain: '', version: 13 }, { domain: 'local', version: 1 }];
  m.producerName = 'whittle-tests';
  const g = m.graph;
  g.name = 'lazy';
  g.inputs = [value('cond', { kind: 'tensor', elemType: DataType.BOOL, shape: [] }), value('x', f32([BIG]))];
  g.outputs = [value('y', f32([BIG]))];
  g.initializers.set('w', Tensor.fromTypedArray('w', DataType.FLOAT, [BIG], random(BIG, 1)));
  g.initializers.set('small', Tensor.fromTypedArray('small', DataType.FLOAT, [3], Float32Array.of(1, 2, 3)));
  const thenBranch = new Graph();
  thenBranch.name = 'then';
  thenBranch.parent = g;
  thenBranch.initializers.set('w_then', Tensor.fromTypedArray('w_then', DataType.FLOAT, [BIG], random(BIG, 2)));
  thenBranch.nodes = [new Node({ name: 'add_then', opType: 'Add', inputs: ['x', 'w_then'], outputs: ['then_out'] })];
  thenBranch.outputs = [value('then_out', f32([BIG]))];
  const elseBranch = new Graph();
  elseBranch.name = 'else';
  elseBranch.parent = g;
  elseBranch.nodes = [new Node({ name: 'add_else', opType: 'Add', inputs: ['x', 'c'], outputs: ['else_out'] })];
  elseBranch.outputs = [value('else_out', f32([BIG]))];
  g.nodes = [
    new Node({ name: 'const_c', opType: 'Constant', inputs: [], outputs: ['c'], attributes: [{ name: 'value', type: AttrType.TENSOR, value: Tensor.fromTypedArray('c_value', DataType.FLOAT, [BIG], random(BIG, 3)), extra: {} }] }),
    new Node({ name: 'branch', opType: 'If', inputs: ['cond'], outputs: ['h'], attributes: [
      { name: 'then_branch', type: AttrType.GRAPH, value: thenBranch, extra: {} },
      { name: 'else_branch', type: AttrType.GRAPH, value: elseBranch, extra: {} },
    ] }),
    new Node({ name: 'mul', opType: 'Mul', inputs: ['h', 'w'], outputs: ['y'] }),
  ];
  // a model-local function holding a big tensor: kept as a raw message by the reader, so its bytes must be real
  m.extra.functions = [{
    name: 'f', domain: 'local', input: ['a'], output: ['b'], opset_import: [{ domain: '', version: 13n }],
    node: [
      { op_type: 'Constant', output: ['k'], attribute: [{ name: 'value', type: AttrType.TENSOR, t: { name: 'k', dims: [BigInt(BIG)], data_type: DataType.FLOAT, raw_data: new Uint8Array(FUNCTION_TENSOR.buffer) } }] },
      { op_type: 'Add', input: ['a', 'k'], output: ['b'] },
    ],
  }];
  return m;
}

describe('lazy reading of an inline model (ReadOptions.lazyTensors)', () => {
  const path = join(ROOT, 'lazy.onnx');
  writeOnnxFile(model(), path);

  test('the same tensors as an eager read; the big ones stay in the file, the small ones in memory', () => {
    const eager = readOnnxFile(path);
    const lazy = readOnnxFile(path, { lazyTensors: true });
    const weights = (m: Model) => [...m.weights()].map(({ tensor }) => ({ name: tensor.name, dims: tensor.dims, sha: sha256(tensor.bytes()), zeros: tensor.countZeros() }));
    assert.deepEqual(weights(lazy), weights(eager));
    const kinds = Object.fromEntries([...lazy.weights()].map(({ tensor }) => [tensor.name, tensor.source.kind === 'external' && tensor.source.inModelFile ? 'in file' : tensor.source.kind]));
    assert.deepEqual(kinds, { w: 'in file', small: 'inline', c_value: 'in file', w_then: 'in file' });
    const fn = (lazy.extra.functions as { node: { attribute?: { t: { raw_data: Uint8Array } }[] }[] }[])[0]!;
    assert.equal(sha256(fn.node[0]!.attribute![0]!.t.raw_data), sha256(new Uint8Array(FUNCTION_TENSOR.buffer)), "a function's tensor is read, not left as zeros");
  });

  test('written again, byte-identical to the eager read written again; the file counted once', () => {
    const a = join(ROOT, 'eager-out.onnx');
    const b = join(ROOT, 'lazy-out.onnx');
    writeOnnxFile(readOnnxFile(path), a);
    const lazy = readOnnxFile(path, { lazyTensors: true });
    writeOnnxFile(lazy, b);
    assert.equal(sha256(readFileSync(b)), sha256(readFileSync(a)));
    assert.equal(modelBytes(lazy), statSync(path).size);
    const report = inspectModel(lazy);
    assert.equal(report.bytes, statSync(path).size);
    assert.equal(report.externalDataBytes, 0);
  });

  test('written over its own file, the result is still the same model', () => {
    const copy = join(ROOT, 'self.onnx');
    writeFileSync(copy, readFileSync(path));
    writeOnnxFile(readOnnxFile(copy, { lazyTensors: true }), copy);
    assert.equal(sha256(readFileSync(copy)), sha256(readFileSync(join(ROOT, 'eager-out.onnx'))));
  });

  test('a file the walk cannot follow reads, and fails, as an eager read does', () => {
    const bytes = readFileSync(path);
    const cut = join(ROOT, 'cut.onnx');
    writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
    const message = (f: () => unknown) => { try { f(); return 'no error'; } catch (err) { return (err as Error).message; } };
    assert.equal(message(() => readOnnxFile(cut, { lazyTensors: true })), message(() => readOnnxFile(cut)));
    assert.notEqual(message(() => readOnnxFile(cut)), 'no error');
  });
});

describe('computed tensor sources', () => {
  const values = Uint8Array.from({ length: 100_003 }, (_, i) => (i * 7) % 13);
  let fills = 0;
  const computed = () => new Tensor({
    name: 'q', dataType: DataType.UINT8, dims: [values.length],
    source: { kind: 'computed', length: values.length, fill(into, offset) { fills++; into.set(values.subarray(offset, offset + into.length)); } },
  });
  const zeros = values.filter((v) => v === 0).length;

  test('pieces, zeros and the whole bytes are what fill gives; zeros are counted on the way', () => {
    const t = computed();
    const pieces: number[] = [];
    for (const piece of t.chunksInto(new Uint8Array(4096))) pieces.push(...piece);
    assert.deepEqual(pieces, [...values]);
    fills = 0;
    assert.equal(t.countZeros(), zeros);
    assert.equal(fills, 0, 'the pass over the pieces counted them');
    assert.deepEqual([...computed().bytes()], [...values]);
    const chunks = [...computed().byteSource().chunks()];
    assert.deepEqual(chunks.flatMap((c) => [...c]), [...values]);
  });

  test('written inline and to external data like the same bytes held in memory', () => {
    const held = () => Tensor.fromTypedArray('q', DataType.UINT8, [values.length], values);
    for (const externalData of [false, true]) {
      const sums = [computed, held].map((make, i) => {
        const m = new Model();
        m.opsets = [{ domain: '', version: 13 }];
        m.graph.initializers.set('q', make());
        m.graph.nodes = [new Node({ opType: 'Identity', inputs: ['q'], outputs: ['y'] })];
        m.graph.outputs = [{ name: 'y', type: { kind: 'tensor', elemType: DataType.UINT8, shape: [values.length] }, extra: {} }];
        const out = join(ROOT, `computed-${externalData}-${i}.onnx`);
        const r = writeOnnxFile(m, out, { externalData, location: 'q.data' });
        return sha256(readFileSync(out)) + (r.externalDataPath ? sha256(readFileSync(r.externalDataPath)) : '');
      });
      assert.equal(sums[0], sums[1], `externalData: ${externalData}`);
    }
  });
});
