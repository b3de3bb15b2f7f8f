/**
 * Reads a Chromium trace (browser.startTracing / stopTracing with TRACE_CATEGORIES) and finds the
 * longest task the renderer's main thread ran: the 'ThreadControllerImpl::RunTask' (toplevel) or
 * 'RunTask' (devtools.timeline) events on the CrRendererMain thread.
 */
export const TRACE_CATEGORIES = ['devtools.timeline', 'disabled-by-default-devtools.timeline', 'toplevel'];
interface TraceEvent {
  name: string;
  ph: string;
  pid: number;
  tid: number;
  ts: number;
  dur?: number;
  args?: { name?: string; data?: unknown };
}

export interface LongestTask {
  /** Longest main-thread task, milliseconds. */
  longestMs: number;
  /** Tasks seen on the renderer main thread(s) in the trace. */
  tasks: number;
  /** Tasks over 50 ms (the "long task" threshold) and over 100 ms. */
  over50: number;
  over100: number;
  /** The trace's span, seconds (first to last main-thread task). */
  spanS: number;
  /** Renderer main threads measured (pid:tid). */
  threads: string[];
  /** The page's renderer process, when the trace named it. */
  rendererPid: number | null;
}

const TASK_NAMES = new Set(['RunTask', 'ThreadControllerImpl::RunTask']);

/**
 * `pageUrl`: only the renderer process that shows this page's main frame (found in the
 * TracingStartedInBrowser event) is measured; without it, every renderer main thread is.
 */
export function longestMainThreadTask(trace: Buffer | string, pageUrl?: string): LongestTask {
  const doc = JSON.parse(typeof trace === 'string' ? trace : trace.toString('utf8')) as { traceEvents?: TraceEvent[] } | TraceEvent[];
  const events = Array.isArray(doc) ? doc : doc.traceEvents ?? [];
  let rendererPid: number | undefined;
  if (pageUrl) {
    for (const e of events) {
      if (e.name !== 'TracingStartedInBrowser') continue;
      const frames = ((e.args?.data as { frames?: { processId?: number; url?: string; parent?: string }[] } | undefined)?.frames) ?? [];
      const main = frames.find((f) => !f.parent && f.url?.startsWith(pageUrl));
      if (main?.processId) rendererPid = main.processId;
    }
  }
  const mains = new Set<string>();
  for (const e of events) {
    if (e.ph === 'M' && e.name === 'thread_name' && e.args?.name === 'CrRendererMain') {
      if (rendererPid === undefined || e.pid === rendererPid) mains.add(`${e.pid}:${e.tid}`);
    }
  }
  const hasToplevel = events.some((e) => e.name === 'ThreadControllerImpl::RunTask' && mains.has(`${e.pid}:${e.tid}`));
  let longest = 0;
  let tasks = 0;
  let over50 = 0;
  let over100 = 0;
  let first = Infinity;
  let last = -Infinity;
  const count = (ts: number, durUs: number) => {
    const ms = durUs / 1000;
    tasks += 1;
    if (ms > longest) longest = ms;
    if (ms > 50) over50 += 1;
    if (ms > 100) over100 += 1;
    first = Math.min(first, ts);
    last = Math.max(last, ts + durUs);
  };
  // Complete events ('X'), and begin/end pairs ('B'/'E') for tasks Chromium wrote in two halves.
  const open = new Map<string, number[]>();
  for (const e of events) {
    if (!TASK_NAMES.has(e.name)) continue;
    const thread = `${e.pid}:${e.tid}`;
    if (!mains.has(thread)) continue;
    // Both names describe the same task (one nested in the other): count one of them.
    if (e.name !== 'ThreadControllerImpl::RunTask' && hasToplevel) continue;
    if (e.ph === 'X') count(e.ts, e.dur ?? 0);
    else if (e.ph === 'B') (open.get(thread) ?? open.set(thread, []).get(thread)!).push(e.ts);
    else if (e.ph === 'E') {
      const start = open.get(thread)?.pop();
      if (start !== undefined) count(start, e.ts - start);
    }
  }
  return { longestMs: Math.round(longest * 10) / 10, tasks, over50, over100, spanS: tasks ? Math.round((last - first) / 1e4) / 100 : 0, threads: [...mains], rendererPid: rendererPid ?? null };
}
