import { join } from 'node:path';

/**
 * Where the pieces of the desktop app are, relative to the main bundle (dist/electron/main.js),
 * the same in a checkout and inside the packaged app.asar.
 */
export interface AppPaths {
  /** dist/renderer: what app:// serves. */
  renderer: string;
  preload: string;
  engineHost: string;
  /** The CLI bundle job processes run. */
  cli: string;
}

export function appPaths(mainDir: string): AppPaths {
  return {
    renderer: join(mainDir, '..', 'renderer'),
    preload: join(mainDir, 'preload.cjs'),
    engineHost: join(mainDir, 'engine-host.js'),
    cli: join(mainDir, '..', 'cli', 'whittle.js'),
  };
}

/**
 * The folder of example models the Library offers: WHITTLE_FIXTURES when set, else the fixtures
 * beside the checkout (../shared/fixtures, as the README says), else examples shipped in the
 * package's resources; null when there are none (the Library then shows only recent models).
 */
export function examplesRoot(options: {
  mainDir: string;
  env: Record<string, string | undefined>;
  packaged: boolean;
  resourcesPath: string;
  exists(path: string): boolean;
}): string | null {
  const candidates: string[] = [];
  if (options.env.WHITTLE_FIXTURES) candidates.push(options.env.WHITTLE_FIXTURES);
  if (options.packaged) candidates.push(join(options.resourcesPath, 'examples'));
  // dist/electron → repository root → its sibling `shared/fixtures`.
  else candidates.push(join(options.mainDir, '..', '..', '..', 'shared', 'fixtures'));
  return candidates.find((c) => options.exists(c)) ?? null;
}
