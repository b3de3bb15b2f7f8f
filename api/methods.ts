import { z } from 'zod';
import {
  AppInfo, DeviceReport, ExampleModel, ExportedFile, InspectReport, JobInfo, JobLog, JobProgress, JobSpec,
  ModelRef, RunComparison, RunDetail, RunFilter, RunSummary, Settings, WeightHistogram,
} from './schemas.ts';

/**
 * Every method the app can call, declared once (SPEC §5). `query` reads, `mutation` changes
 * something and returns at once, `job` returns `{jobId}` at once and reports through events.
 * Both transports (Electron IPC, WebSocket) carry exactly these, validated by the dispatcher.
 */
export type MethodKind = 'query' | 'mutation' | 'job';

interface MethodDef<I extends z.ZodType, O extends z.ZodType> {
  kind: MethodKind;
  input: I;
  output: O;
  summary: string;
}

function method<I extends z.ZodType, O extends z.ZodType>(kind: MethodKind, input: I, output: O, summary: string): MethodDef<I, O> {
  return { kind, input, output, summary };
}

const None = z.object({}).strict();
const Ok = z.object({ ok: z.literal(true) });
const RunId = z.object({ runId: z.string().min(1) }).strict();

export const METHODS = {
  'app.info': method('query', None, AppInfo, 'version, WHITTLE_HOME, transport mode and workspace'),

  'models.open': method('mutation', z.object({ path: z.string().min(1) }).strict(), ModelRef, 'open a model file (checked, remembered in recent models)'),
  'models.recent': method('query', None, z.array(ModelRef), 'recently opened models, newest first'),
  'models.examples': method('query', None, z.array(ExampleModel), 'built-in example models'),
  'models.inspect': method('query', z.object({ path: z.string().min(1) }).strict(), InspectReport, 'SPEC §3 inspect document'),
  'models.histogram': method(
    'query',
    z.object({ path: z.string().min(1), layer: z.string().min(1), bins: z.number().int().min(2).max(512).default(64) }).strict(),
    WeightHistogram,
    'weight value histogram of one layer',
  ),

  'jobs.start': method('job', z.object({ spec: JobSpec }).strict(), z.object({ jobId: z.string() }), 'queue a job; progress and result arrive as events'),
  'jobs.list': method('query', None, z.array(JobInfo), 'jobs of this session, newest first'),
  'jobs.get': method('query', z.object({ jobId: z.string().min(1) }).strict(), JobInfo, 'one job'),
  'jobs.cancel': method('mutation', z.object({ jobId: z.string().min(1) }).strict(), z.object({ cancelled: z.boolean() }), 'cancel a queued or running job (AbortSignal, then kill)'),

  'experiments.list': method('query', RunFilter, z.array(RunSummary), 'recorded runs, newest first'),
  'experiments.get': method('query', RunId, RunDetail, 'one run with inputs, environment, layer metrics and artifacts'),
  'experiments.compare': method('query', z.object({ runIds: z.array(z.string().min(1)).min(2).max(16) }).strict(), RunComparison, 'metrics and per-layer metrics side by side'),
  'experiments.exportTable': method(
    'query',
    z.object({ runIds: z.array(z.string().min(1)).optional(), format: z.enum(['csv', 'json']) }).strict(),
    z.object({ fileName: z.string(), mimeType: z.string(), content: z.string() }),
    'runs as CSV or JSON text',
  ),
  'experiments.delete': method('mutation', RunId, Ok, 'delete a finished run and its artifacts'),

  'artifacts.export': method(
    'mutation',
    z.object({ runId: z.string().min(1), destination: z.string().min(1).optional() }).strict(),
    z.object({ folder: z.string(), files: z.array(ExportedFile) }),
    'artifact + recipe + report (JSON, Markdown, HTML) into a folder (server mode: downloadable)',
  ),

  'devices.list': method('query', None, DeviceReport, 'execution providers, adapters and why any is unusable'),
  'settings.get': method('query', None, Settings, 'current settings'),
  'settings.set': method('mutation', Settings.partial().strict(), Settings, 'change settings; returns all of them'),
} as const;

export type Methods = typeof METHODS;
export type MethodName = keyof Methods;
/** What a caller passes (defaults may be left out). */
export type MethodInput<M extends MethodName> = z.input<Methods[M]['input']>;
/** What a handler receives (defaults filled in). */
export type MethodParams<M extends MethodName> = z.output<Methods[M]['input']>;
export type MethodResult<M extends MethodName> = z.output<Methods[M]['output']>;

/** Pushes from the engine (SPEC §5). */
export const EVENTS = {
  'job.progress': JobProgress,
  'job.log': JobLog,
  /** Any change of a job's status (queued → running → succeeded | failed | cancelled), with the whole job. */
  'job.state': JobInfo,
  /** The store changed (a run was recorded or deleted): lists should refresh. */
  'experiments.changed': z.object({ runId: z.string().nullable() }),
  /**
   * Desktop only, sent by the Electron shell: a native menu command for the renderer to carry out.
   * `open-model`: File → Open Model… has already opened `path` with models.open (so it is in the
   * recent models); show it.
   */
  'app.command': z.discriminatedUnion('command', [
    z.object({ command: z.literal('open-model'), path: z.string().min(1) }).strict(),
  ]),
  /**
   * Desktop only: something the shell wants the user to see, e.g. the engine process stopped and is
   * being restarted, or an export finished. Show it as a toast (errors stay until dismissed).
   */
  'app.notice': z.object({ level: z.enum(['info', 'warn', 'error']), message: z.string().min(1) }).strict(),
} as const;
export type Events = typeof EVENTS;
export type EventName = keyof Events;
export type EventPayload<E extends EventName> = z.output<Events[E]>;

export function isMethodName(name: string): name is MethodName {
  return Object.prototype.hasOwnProperty.call(METHODS, name);
}
export function isEventName(name: string): name is EventName {
  return Object.prototype.hasOwnProperty.call(EVENTS, name);
}
