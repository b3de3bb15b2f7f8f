import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
export const WHITTLE_VERSION: string = (require('../package.json') as { version: string }).version;

/** Versions of the runtimes that produced a result: recorded with every run. */
export function runtimeVersions(): Record<string, string> {
  const versions: Record<string, string> = { whittle: WHITTLE_VERSION, node: process.versions.node };
  for (const pkg of ['onnxruntime-node', 'better-sqlite3', 'protobufjs']) {
    try {
      versions[pkg] = (require(`${pkg}/package.json`) as { version: string }).version;
    } catch {
      // not installed: leave it out rather than guess
    }
  }
  return versions;
}
