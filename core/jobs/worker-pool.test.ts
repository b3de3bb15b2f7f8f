import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { WhittleError } from '../../api/errors.ts';
import { DataType } from '../../native-models/ir/dtypes.ts';
import { Tensor } from '../../native-models/ir/tensor.ts';
import { seededGaussian } from '../../native-models/ir/random.ts';
import { decodeToFloat32 } from './pool-kernels.mjs';
import { weightHistogram } from './weight-histogram.ts';
import { defaultPoolSize, WorkerPool } from './worker-pool.ts';

function gaussianTensor(n: number, seed = 1): { tensor: Tensor; values: Float32Array } {
  const values = seededGaussian(n, seed);
  for (let i = 0; i < n; i += 10) values[i] = 0; // a tenth pruned
  return { tensor: Tensor.fromTypedArray('w', DataType.FLOAT, [n], values), values };
}

describe('worker pool', () => {
  const pool = new WorkerPool({ size: 2 });
  after(() => pool.close());

  test('size is the cores minus one, at least one', () => {
    assert.ok(defaultPoolSize() >= 1);
    assert.equal(new WorkerPool({ size: 0 }).size, 1);
  });

  test('runs kernels on worker threads, moving transferred buffers', async () => {
    const bytes = new Uint8Array(new Float32Array([1, -2, 0, 3.5, Number.NaN]).buffer);
    const range = await pool.run('range', { dataType: DataType.FLOAT, bytes }, { transfer: [bytes.buffer as ArrayBuffer] });
    assert.deepEqual(range, { min: -2, max: 3.5, zeros: 1, nonFinite: 1, count: 5 });
    assert.equal(bytes.byteLength, 0, 'the buffer was moved, not copied');
    assert.ok(pool.threads >= 1 && pool.threads <= 2);
  });

  test('a queued task aborted before it starts never runs; a running one is stopped and its thread replaced', async () => {
    const busy = [pool.run('spin', { ms: 300 }), pool.run('spin', { ms: 300 })];
    const controller = new AbortController();
    const queued = pool.run('spin', { ms: 10_000 }, { signal: controller.signal });
    controller.abort();
    await assert.rejects(queued, (err: unknown) => err instanceof WhittleError && err.code === 'CANCELLED');
    await Promise.all(busy);

    const running = new AbortController();
    const t0 = Date.now();
    const long = pool.run('spin', { ms: 20_000 }, { signal: running.signal });
    setTimeout(() => running.abort(), 200);
    await assert.rejects(long, (err: unknown) => err instanceof WhittleError && err.code === 'CANCELLED');
    assert.ok(Date.now() - t0 < 10_000, 'the spinning thread was not stopped');
    // the pool still works
    assert.equal(typeof (await pool.run('spin', { ms: 1 })), 'number');
    await assert.rejects(pool.run('spin', { ms: 1 }, { signal: AbortSignal.abort() }), /cancelled/);
  });

  test('a kernel that throws fails its task, not the pool', async () => {
    await assert.rejects(pool.run('range', { dataType: 999, bytes: new Uint8Array(4) }), /cannot decode tensor data of type 999/);
    assert.deepEqual((await pool.run('range', { dataType: DataType.INT8, bytes: new Uint8Array([0, 255]) })).min, -1);
  });

  test('the weight histogram split over the pool equals the one counted in one piece', async () => {
    const { tensor, values } = gaussianTensor(300_000);
    const inline = await weightHistogram(tensor, 33);
    const parallel = await weightHistogram(tensor, 33, { pool, pieceBytes: 64 << 10, parallelMinBytes: 0 });
    assert.deepEqual(parallel, inline);
    assert.equal(inline.total, values.length);
    assert.equal(inline.zeros, 30_000);
    assert.equal(inline.counts.reduce((a, b) => a + b, 0), values.length);
    let min = Infinity, max = -Infinity;
    for (const v of values) { min = Math.min(min, v); max = Math.max(max, v); }
    assert.equal(inline.min, min);
    assert.equal(inline.max, max);
    assert.equal(inline.edges.length, 34);
    // the bin holding 0 holds at least the zeros
    const zeroBin = inline.edges.findIndex((e, i) => e <= 0 && 0 < inline.edges[i + 1]!);
    assert.ok(inline.counts[zeroBin]! >= 30_000);
  });

  test('histograms of other dtypes: float16, int4 with a padding nibble, a constant tensor', async () => {
    const half = new Tensor({ name: 'h', dataType: DataType.FLOAT16, dims: [3], source: { kind: 'inline', bytes: new Uint8Array(new Uint16Array([0x3c00, 0xc000, 0x0000]).buffer) } });
    const h = await weightHistogram(half, 4);
    assert.deepEqual([h.min, h.max, h.zeros, h.total], [-2, 1, 1, 3]);
    // int4 [1, -1, 7] packed low nibble first: 0xF1, 0x07 (the high nibble of the last byte is padding)
    const int4 = new Tensor({ name: 'q', dataType: DataType.INT4, dims: [3], source: { kind: 'inline', bytes: new Uint8Array([0xf1, 0x07]) } });
    const q = await weightHistogram(int4, 8, { pool, parallelMinBytes: 0 });
    assert.deepEqual([q.min, q.max, q.zeros, q.total, q.counts.reduce((a, b) => a + b, 0)], [-1, 7, 0, 3, 3]);
    assert.deepEqual([...decodeToFloat32(DataType.INT4, new Uint8Array([0xf1, 0x07]), 3)], [1, -1, 7]);
    const constant = Tensor.fromTypedArray('c', DataType.FLOAT, [4], new Float32Array([2, 2, 2, 2]));
    const c = await weightHistogram(constant, 2);
    assert.deepEqual([c.edges, c.counts], [[1.5, 2, 2.5], [0, 4]]);
    const strings = new Tensor({ name: 's', dataType: DataType.STRING, dims: [1], source: { kind: 'strings', values: [new Uint8Array(1)] } });
    await assert.rejects(weightHistogram(strings, 4), (err: unknown) => err instanceof WhittleError && err.code === 'UNSUPPORTED');
  });

  test('an aborted histogram stops with CANCELLED', async () => {
    const { tensor } = gaussianTensor(200_000, 2);
    await assert.rejects(weightHistogram(tensor, 16, { pool, parallelMinBytes: 0, pieceBytes: 4096, signal: AbortSignal.abort() }),
      (err: unknown) => err instanceof WhittleError && err.code === 'CANCELLED');
  });
});
