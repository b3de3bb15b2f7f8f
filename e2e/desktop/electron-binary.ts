import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Finds the Electron binary the way node_modules/electron/index.js does, without its side effect:
 * requiring that package downloads Electron when the binary is missing, which a test must never do
 * (no network on CI, and minutes of waiting). WHITTLE_ELECTRON names a binary explicitly.
 */
export type ElectronBinary = { path: string } | { missing: string };

export function findElectronBinary(root: string, env: Record<string, string | undefined> = process.env): ElectronBinary {
  if (env.WHITTLE_ELECTRON) {
    return existsSync(env.WHITTLE_ELECTRON) ? { path: env.WHITTLE_ELECTRON } : { missing: `WHITTLE_ELECTRON=${env.WHITTLE_ELECTRON} does not exist` };
  }
  const pkg = join(root, 'node_modules', 'electron');
  if (!existsSync(join(pkg, 'package.json'))) return { missing: 'the electron package is not installed' };
  const pathFile = join(pkg, 'path.txt');
  const executable = existsSync(pathFile) ? readFileSync(pathFile, 'utf8').trim() : '';
  if (env.ELECTRON_OVERRIDE_DIST_PATH) {
    const p = join(env.ELECTRON_OVERRIDE_DIST_PATH, executable || 'electron');
    return existsSync(p) ? { path: p } : { missing: `ELECTRON_OVERRIDE_DIST_PATH names ${p}, which does not exist` };
  }
  if (!executable) return { missing: 'node_modules/electron/path.txt is absent: the binary was never downloaded' };
  const p = join(pkg, 'dist', executable);
  return existsSync(p) ? { path: p } : { missing: `node_modules/electron/path.txt names dist/${executable}, which does not exist` };
}
