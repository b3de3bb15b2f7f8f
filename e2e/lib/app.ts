import assert from 'node:assert/strict';
import type { Locator, Page } from 'playwright-core';

/**
 * What the tests know about the renderer's shape: the nav's view labels, each view's h1, and a few
 * stable hooks (data-testid, aria labels) read from renderer/src.
 */
export const VIEW_LABELS = {
  library: 'Library',
  model: 'Model',
  compress: 'Compress',
  jobs: 'Jobs',
  experiments: 'Experiments',
  devices: 'Devices & settings',
} as const;
export type ViewId = keyof typeof VIEW_LABELS;

export function nav(page: Page): Locator {
  return page.getByRole('navigation', { name: 'Views' });
}

/** The shown view's host (hidden views stay mounted). */
export function currentView(page: Page): Locator {
  return page.locator('main .view-host:not([hidden])');
}

/** Clicks the nav entry and waits until that view is the one shown. */
export async function goto(page: Page, view: ViewId): Promise<void> {
  await nav(page).locator(`a[href="#${view}"]`).click();
  await waitForView(page, view);
}

export async function waitForView(page: Page, view: ViewId, timeout = 15_000): Promise<void> {
  await nav(page).locator(`a[href="#${view}"][aria-current="page"]`).waitFor({ timeout });
  await currentView(page).locator(`h1#${view}-title`).waitFor({ state: 'visible', timeout });
}

/** Pixels of a canvas that are not fully transparent (a drawn chart has thousands). */
export async function paintedPixels(canvas: Locator): Promise<number> {
  return canvas.evaluate((el) => {
    const c = el as HTMLCanvasElement;
    const ctx = c.getContext('2d');
    if (!ctx || c.width === 0 || c.height === 0) return 0;
    const data = ctx.getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i]! > 0) n++;
    return n;
  });
}

/** A job's card in the Jobs view. */
export function jobCard(page: Page, jobId: string): Locator {
  return page.locator(`li.job[data-job-id="${jobId}"]`);
}

/** The jobId of the newest job card (the list is newest first). */
export async function newestJobId(page: Page): Promise<string> {
  const first = currentView(page).locator('li.job').first();
  await first.waitFor();
  return (await first.getAttribute('data-job-id'))!;
}

/**
 * Records every progress value the page shows from now on (a MutationObserver on role=progressbar
 * aria-valuenow), so a test can assert the bar moved even when the job is quick.
 */
export async function watchProgressBars(page: Page): Promise<void> {
  // A string, not a function: tsx would wrap named inner functions in a helper the page lacks.
  await page.evaluate(`(() => {
    window.__progressObserver?.disconnect();
    const seen = (window.__progress = []);
    window.__progressObserver = new MutationObserver(() => {
      for (const el of document.querySelectorAll('[role="progressbar"][aria-valuenow]')) {
        const v = Number(el.getAttribute('aria-valuenow'));
        if (seen[seen.length - 1] !== v) seen.push(v);
      }
    });
    window.__progressObserver.observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['aria-valuenow'] });
  })()`);
}

export async function progressSeen(page: Page): Promise<number[]> {
  return page.evaluate(() => (window as unknown as { __progress?: number[] }).__progress ?? []);
}

/** Waits for a job card to reach a final status and returns it. */
export async function waitForJobEnd(page: Page, jobId: string, timeout = 120_000): Promise<string> {
  const card = jobCard(page, jobId);
  await card.and(page.locator('[data-status="succeeded"], [data-status="failed"], [data-status="cancelled"]')).waitFor({ timeout });
  return (await card.getAttribute('data-status'))!;
}

/** The last test of a file: no uncaught exception in the page during the whole file. */
export function assertNoPageErrors(session: { errors: string[]; consoleErrors: string[] }): void {
  if (session.consoleErrors.length) console.log(`  console errors (not failures): ${[...new Set(session.consoleErrors)].join(' | ')}`);
  assert.deepEqual(session.errors, [], 'uncaught exceptions in the page');
}
