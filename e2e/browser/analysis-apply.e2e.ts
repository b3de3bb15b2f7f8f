import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { assertNoPageErrors, currentView, goto, jobCard, newestJobId, waitForJobEnd, waitForView } from '../lib/app.ts';
import { screenshot } from '../lib/browser.ts';
import { F } from '../lib/paths.ts';
import { E2E_MARKER, markedProcesses } from '../lib/processes.ts';
import { runJobThroughApi, startSession, type Session } from '../lib/session.ts';

// The profile-then-plan workflow through the app: a prune sensitivity analysis of MNIST recommends
// a sparsity per layer; its run offers "Prune with this plan", which opens the Compress view with a
// magnitude step carrying the plan; running it prunes every layer to its planned share.
let s: Session;

before(async () => {
  s = await startSession();
});
after(async () => {
  await s?.close();
  assert.deepEqual(markedProcesses(E2E_MARKER), [], 'no process of this test file outlives it');
});

test('a prune analysis\'s plan, applied from its run: the Compress step shows it, and the pruned model follows it layer by layer', { timeout: 150_000 }, async () => {
  const { page } = s;
  const done = await runJobThroughApi(s, { kind: 'analyze', model: F.mnist, for: 'prune', data: { path: F.mnistImages, preprocess: 'mnist', limit: 64 }, budgetRatio: 0.6 }, 'the prune analysis');
  const rpc = await s.rpc();
  const analysis = await rpc.call('experiments.get', { runId: done.runId! });
  const plan = Object.fromEntries((analysis.result as { recommendation: { plan: { layer: string; sparsity: number }[] } }).recommendation.plan.map((p) => [p.layer, p.sparsity]));
  assert.equal(Object.keys(plan).length, 3);

  await goto(page, 'experiments');
  const experiments = currentView(page);
  await experiments.locator(`tr[data-run-id="${done.runId}"] button.link`).click();
  const detail = experiments.locator(`section.detail[data-run-id="${done.runId}"]`);
  await detail.getByRole('button', { name: 'Prune with this plan' }).click();
  await waitForView(page, 'compress');
  const view = currentView(page);
  const shown = view.getByTestId('layer-plan');
  await shown.waitFor();
  assert.match(await shown.innerText(), /3 layers at [\d.]+–[\d.]+ %/);
  assert.equal(await view.getByLabel('Prune method').inputValue(), 'magnitude');
  assert.equal(await view.locator('fieldset.step').count(), 1, 'one step: the plan');
  await shown.scrollIntoViewIfNeeded();
  await screenshot(page, 'compress-layer-plan');

  await view.getByRole('button', { name: 'Run', exact: true }).click();
  await waitForView(page, 'jobs');
  const jobId = await newestJobId(page);
  const status = await waitForJobEnd(page, jobId, 120_000);
  assert.equal(status, 'succeeded', await jobCard(page, jobId).innerText());
  const run = await rpc.call('experiments.get', { runId: (await rpc.call('jobs.get', { jobId })).runId! });
  // the recipe the run recorded carries the plan, and every layer landed on its planned share
  const step = (run.recipe as { steps: { prune?: { layerSparsity?: Record<string, number> } }[] }).steps[0]!.prune!;
  assert.deepEqual(step.layerSparsity, plan);
  const layers = findLayers(run.result);
  for (const [name, sparsity] of Object.entries(plan)) {
    const l = layers.find((x) => x.name === name)!;
    assert.ok(Math.abs(l.sparsity - sparsity) <= 1 / l.parameters + 1e-9, `${name}: ${l.sparsity} vs planned ${sparsity}`);
  }
  assertNoPageErrors(s);
});

/** The per-layer entries of a prune step's report, wherever the recipe result keeps them. */
function findLayers(doc: unknown): { name: string; sparsity: number; parameters: number }[] {
  if (!doc || typeof doc !== 'object') return [];
  const layers = (doc as { layers?: unknown }).layers;
  if (Array.isArray(layers) && layers.every((l) => l && typeof l === 'object' && 'sparsity' in l)) return layers as never;
  for (const v of Object.values(doc)) {
    const found = findLayers(v);
    if (found.length) return found;
  }
  return [];
}
