import assert from 'node:assert/strict';
import type { Browser } from 'playwright-core';
import type { JobInfo, JobSpec, RunDetail } from '../../api/schemas.ts';
import { currentView, jobCard, newestJobId, waitForJobEnd, waitForView } from './app.ts';
import { launchBrowser, openApp, cookieHeader, type AppPage } from './browser.ts';
import { waitFor } from './processes.ts';
import { connectRpc, type RpcClient } from './rpc.ts';
import { startServer, type ServerHandle, type ServerOptions } from './server.ts';

/** One `whittle serve` + one Chromium + the app opened with the token; close() always cleans up. */
export interface Session extends AppPage {
  server: ServerHandle;
  browser: Browser;
  /** Our own /rpc client with the page's cookie (opened on first use). */
  rpc(): Promise<RpcClient>;
  close(): Promise<void>;
}

export async function startSession(options: ServerOptions & { colorScheme?: 'light' | 'dark' } = {}): Promise<Session> {
  const server = await startServer(options);
  let browser: Browser | undefined;
  try {
    browser = await launchBrowser();
    const app = await openApp(browser, server.url, { colorScheme: options.colorScheme ?? 'light' });
    let rpc: RpcClient | undefined;
    const b = browser;
    return {
      ...app,
      server,
      browser: b,
      async rpc() {
        rpc ??= await connectRpc(server.origin, await cookieHeader(app.context, server.origin));
        return rpc;
      },
      async close() {
        const problems: unknown[] = [];
        try { rpc?.close(); } catch (e) { problems.push(e); }
        try { await b.close(); } catch (e) { problems.push(e); }
        try { await server.stop(); } catch (e) { problems.push(e); }
        if (problems.length) throw problems[0];
      },
    };
  } catch (err) {
    await browser?.close().catch(() => {});
    await server.stop().catch(() => {});
    throw err;
  }
}

/**
 * Runs a job through the API the app itself uses (work the UI has no button for, like evaluating the
 * original model as the base of a comparison) and waits for it; fails the test unless it succeeded.
 */
/**
 * Clicks "Analyze sensitivity" in the Compress view (for `what`, with the steps as built there),
 * waits in Jobs for the analysis to succeed, and returns its recorded run.
 */
export async function analyzeFromCompress(s: Session, what: 'quantize' | 'prune'): Promise<RunDetail> {
  const view = currentView(s.page);
  await view.getByLabel('Analyze for').selectOption(what);
  await view.getByRole('button', { name: 'Analyze sensitivity' }).click();
  await waitForView(s.page, 'jobs');
  const jobId = await newestJobId(s.page);
  const status = await waitForJobEnd(s.page, jobId, 120_000);
  if (status !== 'succeeded') assert.fail(`the analysis ended ${status}: ${await jobCard(s.page, jobId).innerText()}`);
  const rpc = await s.rpc();
  return rpc.call('experiments.get', { runId: (await rpc.call('jobs.get', { jobId })).runId! });
}

export async function runJobThroughApi(s: Session, spec: JobSpec, what: string): Promise<JobInfo> {
  const rpc = await s.rpc();
  const { jobId } = await rpc.call('jobs.start', { spec });
  const done = await waitFor(`${what} to finish`, async () => {
    const j = await rpc.call('jobs.get', { jobId });
    return j.status === 'running' || j.status === 'queued' ? null : j;
  }, 90_000, 250);
  assert.equal(done.status, 'succeeded', `${what}: ${JSON.stringify(done.error)}`);
  return done;
}
