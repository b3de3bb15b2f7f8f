/** The experiment store: SQLite in WHITTLE_HOME plus artifact files. Import from here. */
export { openStore, Store, type StartRunOptions, type ModelInfo } from './store.ts';
export { RunHandle } from './run-handle.ts';
export { resolveWhittleHome } from './home.ts';
export { runEnvironment } from './environment.ts';
export { writeAtomically, copyAtomically, type FileDigest } from './atomic.ts';
export { sha256File } from './hash.ts';
export { flattenMetrics } from './flatten.ts';
export { compareRuns, compareLayerMetrics, type RunComparison, type MetricComparison, type LayerMetricComparison } from './compare.ts';
export { commandLine } from './command-line.ts';
export { toCsv } from './export-csv.ts';
export { writeMlflowRuns } from './export-mlflow.ts';
export * from './types.ts';
