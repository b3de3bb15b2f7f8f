import { untrack } from 'svelte';
import type { Client } from '../../../api/client.ts';
import type { AppInfo, ExampleModel, InspectReport, ModelRef, Settings } from '../../../api/schemas.ts';
import type { CompressDraft } from './compress-draft.ts';

/**
 * The app's small shared state: which view is shown, which model is open (and its inspect
 * report, loaded once for the Model and Compress views), the layers the user excluded from
 * compression, and what the engine told us at start (app.info, settings, examples).
 * Any view may import `app`, `navigate` and `openModel`.
 */

export type ViewId = 'library' | 'model' | 'compress' | 'jobs' | 'experiments' | 'devices';

export const VIEWS: ReadonlyArray<{ id: ViewId; label: string }> = [
  { id: 'library', label: 'Library' },
  { id: 'model', label: 'Model' },
  { id: 'compress', label: 'Compress' },
  { id: 'jobs', label: 'Jobs' },
  { id: 'experiments', label: 'Experiments' },
  { id: 'devices', label: 'Devices & settings' },
];

export function isViewId(v: string): v is ViewId {
  return VIEWS.some((x) => x.id === v);
}

/** What a view should focus on when it is opened by another view (e.g. a job or run to select). */
export interface ViewFocus {
  jobId?: string;
  runId?: string;
}

type Loadable<T> = { status: 'idle' | 'loading' | 'ready' | 'error'; value: T | null; error: unknown };

class AppState {
  view = $state<ViewId>('library');
  focus = $state<ViewFocus>({});
  /** The open model; null until the user opens one. */
  model = $state<ModelRef | null>(null);
  /** Inspect report of `model` (loaded on demand by loadInspect). */
  inspect = $state<Loadable<InspectReport>>({ status: 'idle', value: null, error: null });
  /** Node names (or op types) left out of compression; edited in Model and Compress. */
  exclusions = $state<string[]>([]);
  info = $state<AppInfo | null>(null);
  settings = $state<Settings | null>(null);
  examples = $state<ExampleModel[]>([]);
  /** The last failure to open a model (shown by the Library, naming the file). */
  openError = $state<{ file: string; error: unknown } | null>(null);
  /** Files being opened (a drop or Open…); the Library shows them as busy. */
  opening = $state<string | null>(null);
  /** Steps the Compress view takes over when it shows `model` next (openInCompress). */
  compressDraft = $state<CompressDraft | null>(null);
  /** 'light' | 'dark', resolved from the theme setting and the system's preference. */
  resolvedTheme = $state<'light' | 'dark'>('light');
}

export const app = new AppState();

let client: Client | null = null;

/** Called once by App with the engine client; views then use openModel/loadInspect freely. */
export function initAppState(c: Client): void {
  client = c;
}

function requireClient(): Client {
  if (!client) throw new Error('app state used before initAppState');
  return client;
}

/** Shows another view (and updates the address's #hash so back/forward work in the browser). */
export function navigate(view: ViewId, focus: ViewFocus = {}): void {
  app.focus = focus;
  app.view = view;
  const hash = `#${view}`;
  if (typeof location !== 'undefined' && location.hash !== hash) history.pushState(null, '', hash);
}

/** Opens a model by path (engine-side path: a local file, or an uploaded one in browser mode). */
export async function openModel(path: string, options: { show?: boolean } = {}): Promise<ModelRef> {
  app.opening = path;
  app.openError = null;
  try {
    const ref = await requireClient().call('models.open', { path });
    setModel(ref);
    if (options.show ?? true) navigate('model');
    return ref;
  } catch (error) {
    app.openError = { file: path, error };
    throw error;
  } finally {
    app.opening = null;
  }
}

/** Makes `ref` the open model (clears what belonged to the previous one). */
export function setModel(ref: ModelRef): void {
  const same = app.model?.path === ref.path;
  app.model = ref;
  if (!same) {
    app.inspect = { status: 'idle', value: null, error: null };
    app.exclusions = [];
  }
}

/**
 * Loads the open model's inspect report once; `force` loads it again (Reload, Retry). Without
 * force a failure is not retried, so an effect that calls this does not loop on an error.
 * Reads state untracked: calling it from an $effect does not make the effect depend on it.
 */
export function loadInspect(force = false): Promise<void> {
  return untrack(() => loadInspectNow(force));
}

async function loadInspectNow(force: boolean): Promise<void> {
  const model = app.model;
  if (!model) return;
  if (!force && app.inspect.status !== 'idle') return;
  app.inspect = { status: 'loading', value: null, error: null };
  try {
    const report = await requireClient().call('models.inspect', { path: model.path });
    if (app.model?.path === model.path) app.inspect = { status: 'ready', value: report, error: null };
  } catch (error) {
    if (app.model?.path === model.path) app.inspect = { status: 'error', value: null, error };
  }
}

/** Opens a draft's model (if another is open), adds its exclusions and shows it in the Compress view. */
export async function openInCompress(draft: CompressDraft): Promise<void> {
  if (app.model?.path !== draft.model) await openModel(draft.model, { show: false });
  addExclusions(draft.exclude);
  app.compressDraft = draft;
  navigate('compress');
}

export function addExclusions(names: Iterable<string>): number {
  const set = new Set(app.exclusions);
  let added = 0;
  for (const n of names) {
    if (!set.has(n)) {
      set.add(n);
      added++;
    }
  }
  app.exclusions = [...set];
  return added;
}

export function removeExclusion(name: string): void {
  app.exclusions = app.exclusions.filter((n) => n !== name);
}

/** The built-in example whose file is the open model, if it is one (its data suits calibration). */
export function currentExample(): ExampleModel | null {
  const path = app.model?.path;
  if (!path) return null;
  return app.examples.find((e) => e.path === path) ?? null;
}
