import { arch, hostname, platform, release } from 'node:os';
import { runtimeVersions } from '../version.ts';
import type { RunEnvironment } from './types.ts';

/** The environment a run records: runtime versions and host, plus whatever the caller knows (EP, device, seed). */
export function runEnvironment(known: Partial<RunEnvironment> = {}): RunEnvironment {
  return {
    ep: known.ep ?? null,
    device: known.device ?? null,
    seed: known.seed ?? null,
    host: known.host ?? hostname(),
    platform: known.platform ?? `${platform()}-${arch()} ${release()}`,
    versions: { ...runtimeVersions(), ...known.versions },
  };
}
