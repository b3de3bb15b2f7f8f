// Types of wasm-assembler.mjs (plain JavaScript so worker threads need no TypeScript loader).

/** A WebAssembly module's binary from WAT text in the subset wasm-assembler.mjs describes; throws naming what it does not accept. */
export function assembleWat(text: string): Uint8Array;

/** The module's exports, compiled and instantiated with no imports (throws WebAssembly.CompileError where the engine lacks a feature it uses). */
export function instantiateWat(text: string): Record<string, unknown>;

/** Grows a WebAssembly memory to at least `bytes` and returns its buffer (views made before are then detached). */
export function growMemory(memory: { buffer: ArrayBuffer; grow(pages: number): number }, bytes: number): ArrayBuffer;

/** A getter for the exports of `text`, instantiated on first use per thread; null where the engine cannot compile it (no SIMD). */
export function lazyModule<T = Record<string, unknown>>(text: string): () => T | null;
