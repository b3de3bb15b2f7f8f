import type { Dispatch, Handlers } from '../api/dispatch.ts';

/**
 * What the server needs from the engine (core/jobs/engine.ts): the dispatcher every WebSocket frame
 * goes through, its pushes, and a way to stop it. Declared here as well so the server can be tested
 * with a stand-in engine and does not depend on how the real one is built.
 */
export interface EngineOptions {
  mode: 'electron' | 'browser';
  home?: string;
  /** Folders the engine may read; anything else is refused with BAD_INPUT. null: no restriction. */
  readableRoots?: string[] | null;
  /** Where the renderer uploads dropped files (POST), reported by app.info. */
  uploadUrl?: string | null;
  /** A download URL for a file the engine wrote (artifacts, exports), or null when it has none. */
  fileUrl?: (absolutePath: string) => string | null;
  jobCommand?: string[];
  jobEnv?: Record<string, string>;
  examplesRoot?: string;
}

export interface EnginePush {
  event: string;
  payload: unknown;
}

export interface Engine {
  handlers: Handlers;
  dispatch: Dispatch;
  onPush(listener: (push: EnginePush) => void): () => void;
  close(): Promise<void>;
}

export type EngineFactory = (options: EngineOptions) => Engine | Promise<Engine>;

/** The real engine, loaded only when a server starts (it pulls in the store and the runtimes). */
export async function loadEngineFactory(): Promise<EngineFactory> {
  const { createEngine } = await import('../core/jobs/engine.ts');
  // Type-checked here: the real engine must fit what the server expects of one.
  const factory: EngineFactory = createEngine;
  return factory;
}
