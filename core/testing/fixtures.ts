import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, found from this file so tests work from any working directory. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** ../shared/fixtures beside the checkout (it exists for developers and CI). */
export const FIXTURES = resolve(REPO_ROOT, '..', 'shared', 'fixtures');

export function fixture(...parts: string[]): string {
  const p = join(FIXTURES, ...parts);
  if (!existsSync(p)) throw new Error(`fixture missing: ${p} (is ../shared/fixtures beside the checkout?)`);
  return p;
}
