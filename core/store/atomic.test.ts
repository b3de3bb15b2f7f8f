import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { copyAtomically, writeAtomically } from './atomic.ts';
import { openStore } from './store.ts';
import { tempHome } from './test-home.ts';

test('a writer that throws leaves neither the file nor a temp behind', async () => {
  const dir = join(await tempHome('atomic'), 'out');
  const dest = join(dir, 'model.onnx');
  let tmpSeen = '';
  await assert.rejects(writeAtomically(dest, async (tmp) => {
    tmpSeen = tmp;
    await writeFile(tmp, Buffer.alloc(1 << 16, 1));
    throw new Error('disk full halfway');
  }), /disk full halfway/);
  assert.equal(join(tmpSeen, '..'), dir, 'the temp must be in the destination folder so the rename is atomic');
  assert.ok(!existsSync(dest));
  assert.deepEqual(readdirSync(dir), []);
});

test('a failed rewrite keeps the previous file; a good one replaces it whole', async () => {
  const dir = await tempHome('atomic');
  const dest = join(dir, 'report.json');
  await writeAtomically(dest, (tmp) => writeFile(tmp, 'version 1'));
  await assert.rejects(writeAtomically(dest, async (tmp) => {
    await writeFile(tmp, 'version 2, torn');
    throw new Error('killed');
  }));
  assert.equal(readFileSync(dest, 'utf8'), 'version 1');
  await writeAtomically(dest, (tmp) => writeFile(tmp, 'version 2'));
  assert.equal(readFileSync(dest, 'utf8'), 'version 2');
  assert.deepEqual(readdirSync(dir), ['report.json']);
});

test('a writer that writes nothing is an error, not an empty artifact', async () => {
  const dir = await tempHome('atomic');
  await assert.rejects(writeAtomically(join(dir, 'x.bin'), async () => {}), /ENOENT/);
  assert.deepEqual(readdirSync(dir), []);
});

test('copyAtomically hashes what it copies', async () => {
  const dir = await tempHome('atomic');
  const bytes = Buffer.alloc(3 << 20, 7); // several stream chunks
  await writeFile(join(dir, 'src.bin'), bytes);
  const digest = await copyAtomically(join(dir, 'src.bin'), join(dir, 'sub', 'dst.bin'));
  assert.deepEqual(digest, { sha256: createHash('sha256').update(bytes).digest('hex'), bytes: bytes.length });
  assert.deepEqual(readFileSync(join(dir, 'sub', 'dst.bin')), bytes);
});

test('artifacts: copy, move, nested names, and names that would escape the run folder', async () => {
  const home = await tempHome('atomic');
  const store = openStore({ home });
  try {
    const run = await store.startRun({ kind: 'convert', command: ['convert'] });
    const outside = join(home, 'outside');
    await mkdir(outside);
    await writeFile(join(outside, 'model.json'), '{"format":"layers-model"}');
    await writeFile(join(outside, 'shard.bin'), 'weights');

    const copied = await run.addArtifact('tfjs/model.json', join(outside, 'model.json'));
    assert.equal(copied.path, join(home, 'artifacts', run.id, 'tfjs', 'model.json'));
    assert.ok(existsSync(join(outside, 'model.json')), 'a copy leaves the source');
    const moved = await run.addArtifact('tfjs/shard.bin', join(outside, 'shard.bin'), { move: true });
    assert.ok(!existsSync(join(outside, 'shard.bin')), 'a move takes the source');
    assert.equal(readFileSync(moved.path, 'utf8'), 'weights');
    assert.equal(moved.sha256, createHash('sha256').update('weights').digest('hex'));

    // A writer may stream into artifactPath itself, then register the file.
    await writeAtomically(run.artifactPath('log.txt'), (tmp) => writeFile(tmp, 'done'));
    await run.registerArtifact('log.txt');

    for (const bad of ['../escape', '/etc/passwd', 'a/../../b', 'C:\\x', '', 'a//b']) {
      assert.throws(() => run.artifactPath(bad), /artifact name/, bad);
    }
    run.succeed({});
    assert.deepEqual(store.getRun(run.id).artifacts.map((a) => [a.name, a.bytes]), [['tfjs/model.json', 25], ['tfjs/shard.bin', 7], ['log.txt', 4]]);
  } finally {
    store.close();
  }
});
