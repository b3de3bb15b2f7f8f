import type { Engine, EngineOptions } from '../core/jobs/engine.ts';

/**
 * What the server needs from the engine: core/jobs/engine.ts's own types (type-only imports, so
 * loading the server does not load the engine). Tests hand the server a stand-in built on the same
 * dispatcher (server/test-engine.ts) through the factory.
 */
export type { Engine, EngineOptions, EnginePush } from '../core/jobs/engine.ts';

export type EngineFactory = (options: EngineOptions) => Engine | Promise<Engine>;

/** The real engine, loaded only when a server starts (it pulls in the store and the runtimes). */
export async function loadEngineFactory(): Promise<EngineFactory> {
  const { createEngine } = await import('../core/jobs/engine.ts');
  // Type-checked here: the real engine must fit what the server expects of one.
  const factory: EngineFactory = createEngine;
  return factory;
}
