import { realpath, stat } from 'node:fs/promises';
import { basename, isAbsolute, relative } from 'node:path';
import { createDispatcher, type Handlers } from '../api/dispatch.ts';
import { WhittleError } from '../api/errors.ts';
import type { Engine, EngineOptions, EnginePush } from './engine.ts';

/**
 * A stand-in engine for the server's tests: the real dispatcher over handlers that apply the same
 * readableRoots rule as core/jobs/engine.ts (a path outside every root is BAD_INPUT), and nothing
 * else. `emit` sends a push as the engine would.
 */
export interface TestEngine extends Engine {
  options: EngineOptions;
  emit(push: EnginePush): void;
  closed: boolean;
}

export function createTestEngine(options: EngineOptions): TestEngine {
  const listeners = new Set<(push: EnginePush) => void>();

  async function readable(path: string): Promise<{ real: string; bytes: number }> {
    if (!isAbsolute(path)) throw new WhittleError('BAD_INPUT', `${path}: paths must be absolute`);
    const real = await realpath(path).catch(() => null);
    if (!real) throw new WhittleError('NOT_FOUND', `${path}: no such file`);
    const roots = options.readableRoots;
    if (roots) {
      const realRoots = await Promise.all(roots.map((r) => realpath(r).catch(() => r)));
      const allowed = realRoots.some((root) => {
        const rel = relative(root, real);
        return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
      });
      if (!allowed) throw new WhittleError('BAD_INPUT', `${path}: outside the folders this server may read (uploads and --workspace)`);
    }
    return { real, bytes: (await stat(real)).size };
  }

  const notHere = (): never => {
    throw new WhittleError('UNSUPPORTED', 'not part of the test engine');
  };

  const handlers: Handlers = {
    'app.info': () => ({
      version: '0.0.0-test', home: options.home ?? '', mode: options.mode, workspace: options.readableRoots ?? [],
      uploadUrl: options.uploadUrl ?? null, platform: process.platform,
    }),
    'models.open': async ({ path }) => {
      const { real, bytes } = await readable(path);
      return { path: real, name: basename(real), format: real.endsWith('.json') ? 'tfjs' : 'onnx', bytes, openedAt: new Date().toISOString() };
    },
    'models.inspect': async ({ path }) => {
      const { real, bytes } = await readable(path);
      return {
        format: 'onnx', path: real, bytes, parameters: 0, nonzeroParameters: 0, sparsity: 0, nodes: 0,
        inputs: [], outputs: [], opHistogram: {}, layers: [],
      };
    },
    'models.recent': () => [],
    'models.examples': () => [],
    'models.histogram': notHere,
    'jobs.start': notHere,
    'jobs.list': () => [],
    'jobs.get': notHere,
    'jobs.cancel': notHere,
    'experiments.list': () => [],
    'experiments.get': notHere,
    'experiments.compare': notHere,
    'experiments.exportTable': notHere,
    'experiments.delete': notHere,
    'artifacts.export': notHere,
    'devices.list': notHere,
    'settings.get': () => ({ ep: 'cpu', concurrency: 1, theme: 'system' }),
    'settings.set': notHere,
  };

  const engine: TestEngine = {
    options,
    handlers,
    dispatch: createDispatcher(handlers),
    closed: false,
    onPush(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    emit(push) {
      for (const l of listeners) l(push);
    },
    async close() {
      engine.closed = true;
    },
  };
  return engine;
}
