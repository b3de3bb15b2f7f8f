import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { after, describe, it } from 'node:test';
import { readOnnxFile, writeOnnxFile } from '../../../native-models/formats/onnx/index.ts';
import { fixture } from '../../testing/fixtures.ts';
import { createPassContext } from '../pass.ts';
import { tempDir } from '../quantize/test-models.ts';
import { magnitudePrunePass } from './magnitude.ts';
import { SPARSITY_STORAGE_NOTE, artifactSize, defaultDeflateBudget, deflatedSize } from './sparsity-report.ts';
import { pruneModel, type DeflateChoice } from './prune-model.ts';
import { PruneStep } from '../../../api/recipe.ts';
import { formatBytes } from '../../format-bytes.ts';

const tmp = tempDir('sparsity-report');
after(tmp.cleanup);

describe('sparsity report', () => {
  it('the deflated size shrinks as sparsity grows while the file size does not (SqueezeNet fp32)', async (t) => {
    const sizes = [];
    for (const sparsity of [0, 0.3, 0.5, 0.7, 0.9]) {
      const model = readOnnxFile(fixture('squeezenet', 'squeezenet1.0_fp32.onnx'));
      await magnitudePrunePass.run(model, { sparsity }, createPassContext());
      const out = join(tmp.dir, `sq-${sparsity}.onnx`);
      writeOnnxFile(model, out);
      const s = await artifactSize(out);
      assert.equal(s.bytes, statSync(out).size);
      t.diagnostic(`sparsity ${sparsity}: ${s.bytes} B on disk, ${s.deflatedBytes} B deflated (${(s.ratio * 100).toFixed(1)} %)`);
      sizes.push(s);
    }
    for (let i = 1; i < sizes.length; i++) {
      assert.ok(sizes[i]!.deflatedBytes < sizes[i - 1]!.deflatedBytes);
      assert.ok(Math.abs(sizes[i]!.bytes - sizes[0]!.bytes) < 1024, 'dense storage: the file stays the same size');
    }
  });

  it('one piece: the same count as deflateRawSync at level 6; several pieces: their deflated sizes summed, within 0.1 % of one stream', async () => {
    const path = fixture('mnist', 'mnist.onnx');
    const s = await artifactSize(path);
    assert.equal(s.deflatedBytes, deflateRawSync(readFileSync(path), { level: 6 }).length);
    // SqueezeNet fp32 (4.7 MiB): a 4 MiB piece and the rest, deflated at once on the thread pool
    const sq = fixture('squeezenet', 'squeezenet1.0_fp32.onnx');
    const bytes = readFileSync(sq);
    const pieces = deflateRawSync(bytes.subarray(0, 4 << 20), { level: 6 }).length + deflateRawSync(bytes.subarray(4 << 20), { level: 6 }).length;
    const measured = await deflatedSize(sq);
    assert.equal(measured, pieces, 'every piece counted once');
    const whole = deflateRawSync(bytes, { level: 6 }).length;
    assert.ok(Math.abs(measured - whole) / whole < 0.001, `${measured} vs ${whole} B in one stream`);
  });

  it('--deflate: auto measures a model within the budget and skips a bigger one saying why; on measures it anyway; off never', async () => {
    const input = fixture('mnist', 'mnist.onnx');
    const run = (deflate: DeflateChoice, deflateBudget?: number) => pruneModel({ input, output: join(tmp.dir, `mnist-${deflate}-${deflateBudget ?? 'default'}.onnx`), step: PruneStep.parse({ method: 'magnitude', sparsity: 0.5 }), deflate, deflateBudget });
    const measured = await run('auto');
    assert.equal(measured.deflateSkipped, null);
    assert.equal(measured.deflatedBytesBefore, await deflatedSize(input));
    const over = await run('auto', 1024);
    assert.deepEqual([over.deflatedBytesBefore, over.deflatedBytesAfter], [null, null]);
    assert.equal(over.deflateSkipped, `${formatBytes(statSync(input).size)} is over the 1.00 KiB measured by default; --deflate on measures it`);
    assert.equal(over.bytesAfter, measured.bytesAfter, 'the size on disk is measured either way');
    const forced = await run('on', 1024);
    assert.deepEqual([forced.deflatedBytesBefore, forced.deflatedBytesAfter, forced.deflateSkipped], [measured.deflatedBytesBefore, measured.deflatedBytesAfter, null]);
    assert.equal((await run('off')).deflateSkipped, '--deflate off');
    assert.equal(defaultDeflateBudget(), 128 * 1024 * 1024 * availableParallelism());
  });

  it('says that onnxruntime densifies unstructured sparsity', () => {
    assert.match(SPARSITY_STORAGE_NOTE, /densifies/);
    assert.match(SPARSITY_STORAGE_NOTE, /storage, not time/);
  });
});
