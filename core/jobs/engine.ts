import { existsSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkedPush, createDispatcher, type Dispatch, type Handlers } from '../../api/dispatch.ts';
import { WhittleError } from '../../api/errors.ts';
import type { EventName, EventPayload } from '../../api/methods.ts';
import type { DataRef, Recipe } from '../../api/recipe.ts';
import type { DeviceReport as DeviceDocument, InspectReport as InspectDocument, JobSpecParsed, ModelRef, Settings } from '../../api/schemas.ts';
import { openModel, sniffFormat, type ModelFormat } from '../../native-models/formats/index.ts';
import { inspectTfjsModel, readTfjsModel, type TfjsModel } from '../../native-models/formats/tfjs/index.ts';
import { DataType } from '../../native-models/ir/dtypes.ts';
import type { Model } from '../../native-models/ir/model.ts';
import { modelStats } from '../../native-models/ir/stats.ts';
import { Tensor } from '../../native-models/ir/tensor.ts';
import { listDevices, type DeviceReport } from '../../native-models/runtimes/devices.ts';
import { inspectModel } from '../inspect.ts';
import { pairRuns } from '../evaluate/predictions.ts';
import { compareLayerMetrics, compareRuns, openStore, resolveWhittleHome, RUN_KINDS, toCsv, type RunKind } from '../store/index.ts';
import { WHITTLE_VERSION } from '../version.ts';
import { listExamples } from './examples.ts';
import { exportRun } from './export-run.ts';
import { JobManager } from './job-manager.ts';
import { planJob } from './job-plan.ts';
import { createPathPolicy } from './path-policy.ts';
import { loadRecentModels, rememberModel } from './recent-models.ts';
import { loadSettings, saveSettings } from './settings.ts';
import { weightHistogram } from './weight-histogram.ts';
import { WorkerPool } from './worker-pool.ts';

export interface EngineOptions {
  mode: 'electron' | 'browser';
  /** WHITTLE_HOME; default resolveWhittleHome(). */
  home?: string;
  /**
   * null (Electron): any path. Otherwise (server) a path must resolve inside one of these folders
   * (uploads, --workspace folders); the engine adds the example models and its own artifacts and
   * exports folders, which it hands out itself.
   */
  readableRoots?: string[] | null;
  /** Passed through to app.info. */
  uploadUrl?: string | null;
  /** Server mode: the download URL of an exported or artifact file. */
  fileUrl?: (absolutePath: string) => string | null;
  /** How to start the CLI in a child process; default [process.execPath, <repo>/bin/whittle.mjs]. */
  jobCommand?: string[];
  /** Extra environment for job processes (Electron sets ELECTRON_RUN_AS_NODE=1). */
  jobEnv?: Record<string, string>;
  /** Example models; default ../shared/fixtures beside the checkout. */
  examplesRoot?: string;
  /** After a cancel's SIGINT, how long before SIGKILL (default 3 s). */
  killGraceMs?: number;
}

export type EnginePush = { event: EventName; payload: unknown };

export interface Engine {
  handlers: Handlers;
  dispatch: Dispatch;
  /** Every event the engine pushes (already validated); returns the unsubscribe function. */
  onPush(listener: (push: EnginePush) => void): () => void;
  /** Cancels running jobs (waiting for their processes), stops worker threads, closes the store. */
  close(): Promise<void>;
}

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The weight tensor a layer row names (initializer or Constant value, any graph). */
function findWeight(model: Model, name: string): Tensor | null {
  for (const { tensor, node } of model.weights()) if (tensor.name === name || node?.outputs[0] === name) return tensor;
  return null;
}

function displayName(path: string, format: ModelFormat): string {
  return format === 'tfjs' && basename(path) === 'model.json' ? `${basename(dirname(path))}/model.json` : basename(path);
}

function timestamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
}

export function createEngine(options: EngineOptions): Engine {
  const home = resolve(options.home ?? resolveWhittleHome());
  const store = openStore({ home });
  // Real path: opened models are recorded by their real path, and the app matches an open model to
  // its example (to suggest the example's data) by comparing the two.
  const examplesRootGiven = resolve(options.examplesRoot ?? join(REPO_ROOT, '..', 'shared', 'fixtures'));
  const examplesRoot = existsSync(examplesRootGiven) ? realpathSync(examplesRootGiven) : examplesRootGiven;
  // the models the project builds itself (the transformer test bed), also offered as examples
  const zooGiven = join(REPO_ROOT, 'native-models', 'zoo');
  const zooRoot = existsSync(zooGiven) ? realpathSync(zooGiven) : zooGiven;
  const roots = options.readableRoots == null ? null
    : [...options.readableRoots, examplesRoot, zooRoot, join(home, 'artifacts'), join(home, 'exports')];
  const policy = createPathPolicy(roots);
  const pool = new WorkerPool();
  const listeners = new Set<(push: EnginePush) => void>();
  let settings: Settings = loadSettings(home);
  // settings and recent models are read-modify-write files: one change at a time
  let fileWrites: Promise<unknown> = Promise.resolve();
  const serialized = <T>(write: () => Promise<T>): Promise<T> => {
    const next = fileWrites.then(write, write);
    fileWrites = next.catch(() => {});
    return next;
  };

  const push = <E extends EventName>(event: E, payload: EventPayload<E>): void => {
    let message: EnginePush;
    try {
      message = checkedPush(event, payload);
    } catch (err) {
      console.error(`whittle engine: ${(err as Error).message}`); // a bug; the job goes on
      return;
    }
    for (const listener of listeners) {
      try { listener(message); } catch { /* one broken listener must not starve the others */ }
    }
  };

  const jobs = new JobManager({
    home,
    store,
    command: options.jobCommand ?? [process.execPath, join(REPO_ROOT, 'bin', 'whittle.mjs')],
    env: options.jobEnv ?? {},
    concurrency: settings.concurrency,
    push,
    ...(options.killGraceMs !== undefined ? { killGraceMs: options.killGraceMs } : {}),
  });

  // The model view asks for inspect and then histograms of the same file: keep the last one open.
  type OpenedModel = { format: 'onnx'; model: Model } | { format: 'tfjs'; model: TfjsModel };
  let cached: { path: string; size: number; mtimeMs: number; opened: OpenedModel } | null = null;
  function openCached(path: string): OpenedModel {
    const st = statSync(path);
    if (cached && cached.path === path && cached.size === st.size && cached.mtimeMs === st.mtimeMs) return cached.opened;
    cached = null; // let the old model go before the new one is read
    const opened: OpenedModel = sniffFormat(path) === 'tfjs' ? { format: 'tfjs', model: readTfjsModel(path) } : { format: 'onnx', model: openModel(path) };
    cached = { path, size: st.size, mtimeMs: st.mtimeMs, opened };
    return opened;
  }

  /** One layer's weight values, wherever the format keeps them (TF.js weights dequantized). */
  function layerWeight(opened: OpenedModel, layer: string): { layer: string; weight: string; tensor: Tensor } {
    if (opened.format === 'onnx') {
      const row = modelStats(opened.model, { countZeros: false }).layers.find((l) => l.name === layer || l.weight === layer);
      const weight = row?.weight ?? layer;
      const tensor = findWeight(opened.model, weight);
      if (tensor) return { layer: row?.name ?? layer, weight, tensor };
    } else {
      const row = inspectTfjsModel(opened.model).layers.find((l) => l.name === layer || l.weight === layer);
      const weight = opened.model.weights.find((w) => w.name === (row?.weight ?? layer));
      if (weight) return { layer: row?.name ?? layer, weight: weight.name, tensor: Tensor.fromTypedArray(weight.name, DataType.FLOAT, [weight.elementCount], weight.toFloat32()) };
    }
    throw new WhittleError('NOT_FOUND', `${opened.model.path ?? ''}: no layer or weight tensor named "${layer}"`);
  }

  let devices: Promise<DeviceReport> | null = null;

  const readableData = async (ref: DataRef): Promise<DataRef> =>
    (ref.path.startsWith('synthetic:') ? ref : { ...ref, path: await policy.readable(ref.path) });

  /** Every path in a spec checked against the policy and made absolute (the job runs in its own folder). */
  async function checkedSpec(spec: JobSpecParsed): Promise<{ spec: JobSpecParsed; format: ModelFormat | undefined }> {
    switch (spec.kind) {
      case 'quantize':
      case 'prune': {
        const model = await policy.readable(spec.model);
        const calib = spec.step.calib ? await readableData(spec.step.calib) : undefined;
        const step = { ...spec.step, ...(calib ? { calib } : {}) };
        return { spec: { ...spec, model, step } as JobSpecParsed, format: sniffFormat(model) };
      }
      case 'eval': {
        const model = await policy.readable(spec.model);
        return {
          spec: { ...spec, model, ...(spec.data ? { data: await readableData(spec.data) } : {}), ...(spec.reference ? { reference: await policy.readable(spec.reference) } : {}) },
          format: sniffFormat(model),
        };
      }
      case 'analyze': {
        const model = await policy.readable(spec.model);
        return { spec: { ...spec, model, data: await readableData(spec.data) }, format: sniffFormat(model) };
      }
      case 'recipe': {
        const r = spec.recipe;
        const model = await policy.readable(r.model);
        const steps: Recipe['steps'] = [];
        for (const s of r.steps) {
          if ('quantize' in s) steps.push({ quantize: { ...s.quantize, ...(s.quantize.calib ? { calib: await readableData(s.quantize.calib) } : {}) } });
          else steps.push({ prune: { ...s.prune, ...(s.prune.calib ? { calib: await readableData(s.prune.calib) } : {}) } });
        }
        const evalSpec = r.eval ? { ...r.eval, ...(r.eval.data ? { data: await readableData(r.eval.data) } : {}) } : undefined;
        return { spec: { kind: 'recipe', recipe: { ...r, model, steps, ...(evalSpec ? { eval: evalSpec } : {}) } }, format: sniffFormat(model) };
      }
      case 'sleep':
        return { spec, format: undefined };
      case 'demo':
        // the lottery's digits default to the fixture; a folder the user names must be readable
        return { spec: spec.data === undefined ? spec : { ...spec, data: await policy.readable(spec.data) }, format: undefined };
    }
  }

  const handlers: Handlers = {
    'app.info': () => ({
      version: WHITTLE_VERSION,
      home,
      mode: options.mode,
      workspace: options.readableRoots ? [...options.readableRoots] : [],
      uploadUrl: options.uploadUrl ?? null,
      platform: process.platform,
    }),

    'models.open': async ({ path }) => {
      const real = await policy.readable(path);
      const opened = openCached(real); // "checked": a file that does not parse is refused now, not when a job fails on it
      // a TF.js model is model.json and its weight shards
      const bytes = opened.format === 'tfjs' ? opened.model.files.reduce((n, f) => n + f.bytes, 0) : statSync(real).size;
      const ref: ModelRef = { path: real, name: displayName(real, opened.format), format: opened.format, bytes, openedAt: new Date().toISOString() };
      await serialized(() => rememberModel(home, ref));
      return ref;
    },
    'models.recent': async () => {
      const out: ModelRef[] = [];
      for (const m of await loadRecentModels(home)) {
        try {
          await policy.readable(m.path); // gone, or outside this server's folders: not offered
          out.push(m);
        } catch {
          // skip
        }
      }
      return out;
    },
    'models.examples': () => listExamples({ fixtures: examplesRoot, zoo: zooRoot }),
    'models.inspect': async ({ path }) => {
      const opened = openCached(await policy.readable(path));
      // TF.js output shapes the file leaves open stay open here: filling them in means running the
      // model, which belongs in a job process, not in the engine (SPEC §2).
      // (the contract's passthrough objects carry an index signature our interfaces lack; the
      // dispatcher checks the value against the schema on the way out)
      return (opened.format === 'onnx' ? inspectModel(opened.model) : inspectTfjsModel(opened.model)) as unknown as InspectDocument;
    },
    'models.histogram': async ({ path, layer, bins }) => {
      const found = layerWeight(openCached(await policy.readable(path)), layer);
      const h = await weightHistogram(found.tensor, bins, { pool });
      return { layer: found.layer, weight: found.weight, min: h.min, max: h.max, edges: h.edges, counts: h.counts, zeros: h.zeros, total: h.total };
    },

    'jobs.start': async ({ spec }) => {
      const checked = await checkedSpec(spec);
      const info = jobs.submit(checked.spec, (jobDir) => planJob(checked.spec, { jobDir, ...(checked.format ? { modelFormat: checked.format } : {}) }));
      return { jobId: info.jobId };
    },
    'jobs.list': () => jobs.list(),
    'jobs.get': ({ jobId }) => jobs.get(jobId),
    'jobs.cancel': ({ jobId }) => ({ cancelled: jobs.cancel(jobId) }),

    'experiments.list': ({ kind, status, text, limit }) => {
      if (kind !== undefined && !(RUN_KINDS as readonly string[]).includes(kind)) return [];
      return store.listRuns({
        ...(kind ? { kind: kind as RunKind } : {}), ...(status ? { status } : {}), ...(text ? { text } : {}), ...(limit ? { limit } : {}),
      });
    },
    'experiments.get': ({ runId }) => store.getRun(runId),
    'experiments.compare': ({ runIds }) => {
      const runs = runIds.map((id) => store.getRun(id));
      return { ...compareRuns(runs), layers: compareLayerMetrics(runs), ...pairRuns(runs) };
    },
    'experiments.exportTable': ({ runIds, format }) => {
      const runs = runIds ? runIds.map((id) => store.getRun(id)) : store.listRuns();
      if (format === 'csv') return { fileName: `whittle-runs-${timestamp()}.csv`, mimeType: 'text/csv', content: toCsv(runs) };
      const details = runIds ? runs : runs.map((r) => store.getRun(r.id));
      return { fileName: `whittle-runs-${timestamp()}.json`, mimeType: 'application/json', content: JSON.stringify({ runs: details }, null, 2) + '\n' };
    },
    'experiments.delete': async ({ runId }) => {
      const run = store.getRun(runId);
      if (jobs.activeRunIds().has(run.id)) throw new WhittleError('BAD_USAGE', `run ${run.id} is still being recorded by a job; cancel the job first`);
      await store.deleteRun(run.id);
      push('experiments.changed', { runId: run.id });
      return { ok: true as const };
    },

    'artifacts.export': async ({ runId, destination }) => {
      const run = store.getRun(runId);
      const folder = destination !== undefined ? await policy.writable(destination) : join(home, 'exports', run.id);
      return exportRun(run, folder, { fileUrl: options.fileUrl });
    },

    'devices.list': async () => {
      // probing GPUs starts child processes: once per engine, again only if it failed
      const probe = (devices ??= listDevices());
      try {
        return (await probe) as unknown as DeviceDocument;
      } catch (err) {
        devices = null;
        throw err;
      }
    },
    'settings.get': () => ({ ...settings }),
    'settings.set': (changes) => serialized(async () => {
      const next: Settings = { ...settings, ...changes };
      await saveSettings(home, next);
      settings = next;
      jobs.setConcurrency(settings.concurrency);
      return { ...settings };
    }),
  };

  const dispatch = createDispatcher(handlers, {
    onInternalError: (method, err) => console.error(`whittle engine: ${method}: ${(err as Error)?.stack ?? String(err)}`),
  });

  let closing: Promise<void> | null = null;
  return {
    handlers,
    dispatch,
    onPush(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close() {
      closing ??= (async () => {
        await jobs.close();
        await pool.close();
        await fileWrites;
        store.close();
        listeners.clear();
        cached = null;
      })();
      return closing;
    },
  };
}
