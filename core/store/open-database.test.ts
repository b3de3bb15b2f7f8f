import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { WhittleError } from '../../api/errors.ts';
import { openStore } from './store.ts';
import { tempHome } from './test-home.ts';

/** What a user might find in place of the store: each must be refused and left byte-for-byte as it was. */
const NOT_A_STORE: { label: string; bytes: Buffer; problem: RegExp }[] = [
  { label: 'a text file', bytes: Buffer.from('my notes, please keep\n'), problem: /not a SQLite database/ },
  { label: 'random bytes', bytes: randomBytes(8192), problem: /not a SQLite database/ },
  {
    label: 'a SQLite header over garbage',
    bytes: Buffer.concat([Buffer.from('SQLite format 3\0', 'latin1'), Buffer.alloc(84, 0xff), randomBytes(4000)]),
    problem: /damaged/,
  },
];

for (const { label, bytes, problem } of NOT_A_STORE) {
  test(`whittle.db holding ${label} is refused and not touched`, async () => {
    const home = await tempHome('notdb');
    const file = join(home, 'whittle.db');
    await writeFile(file, bytes);
    assert.throws(() => openStore({ home }), (err: unknown) =>
      err instanceof WhittleError && err.code === 'BAD_INPUT' && err.file === file && err.message.includes(file) && problem.test(err.message));
    assert.deepEqual(readFileSync(file), bytes);
    // No journal, WAL or replacement database appeared beside it.
    assert.deepEqual(readdirSync(home).filter((n) => n.startsWith('whittle.db')), ['whittle.db']);
  });
}

test('an empty whittle.db is a new store, as SQLite itself treats it', async () => {
  const home = await tempHome('notdb');
  await writeFile(join(home, 'whittle.db'), '');
  const store = openStore({ home });
  assert.deepEqual(store.listRuns(), []);
  store.close();
});

test('a WHITTLE_HOME that is a file is a clear error', async () => {
  const home = await tempHome('notdb');
  const file = join(home, 'not-a-folder');
  await writeFile(file, 'x');
  assert.throws(() => openStore({ home: file }), (err: unknown) => err instanceof WhittleError && err.code === 'BAD_INPUT' && err.message.includes(file));
  assert.equal(readFileSync(file, 'utf8'), 'x');
});

test('damage deep inside a real store is reported naming the file, and the file is left as it was', async () => {
  const home = await tempHome('notdb');
  const store = openStore({ home });
  for (let i = 0; i < 40; i++) {
    const run = await store.startRun({ kind: 'eval', command: ['eval', 'x'.repeat(400)] });
    run.recordLayerMetrics(Array.from({ length: 40 }, (_, j) => ({ layer: `layer-${j}-${'y'.repeat(40)}`, metric: 'sqnrDb', value: j })));
    run.succeed({});
  }
  store.close();
  const file = join(home, 'whittle.db');
  const damaged = readFileSync(file);
  for (let i = 8192; i < damaged.length; i += 7) damaged[i] = 0xab; // page 1 (the schema) stays readable
  await writeFile(file, damaged);
  assert.throws(() => openStore({ home }).listRuns(), (err: unknown) =>
    err instanceof WhittleError && err.code === 'BAD_INPUT' && err.message.includes(file) && /damaged/.test(err.message));
  assert.deepEqual(readFileSync(file), damaged);
});
