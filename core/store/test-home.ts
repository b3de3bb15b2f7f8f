import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';

/** A fresh WHITTLE_HOME for one test, removed when the test file ends. */
export async function tempHome(label = 'store'): Promise<string> {
  const home = await mkdtemp(join(tmpdir(), `whittle-${label}-`));
  after(() => rm(home, { recursive: true, force: true }));
  return home;
}
