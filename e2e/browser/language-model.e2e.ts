import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Page } from 'playwright-core';
import { assertNoPageErrors, currentView, goto, jobCard, newestJobId, waitForJobEnd, waitForView } from '../lib/app.ts';
import { screenshot } from '../lib/browser.ts';
import { ROOT } from '../lib/paths.ts';
import { E2E_MARKER, markedProcesses, waitFor } from '../lib/processes.ts';
import { analyzeFromCompress, runJobThroughApi, startSession, type Session } from '../lib/session.ts';

// A language model through the app: the project's own transformer test bed (native-models/zoo) is a
// Library example whose data is held-back text and whose calibration data is a training split; GPTQ
// int4 from the Compress view calibrates on the one and is evaluated on the other, and Jobs and
// Experiments show its perplexity (lower is better) beside the fp32 model's.
const ZOO = join(ROOT, 'native-models', 'zoo', 'transformer');
let s: Session;
let baselineRun = '';

before(async () => {
  s = await startSession();
  // The fp32 model's own evaluation on the held-back text, through the API the app uses.
  const done = await runJobThroughApi(s, { kind: 'eval', model: join(ZOO, 'char-transformer.onnx'), data: { path: join(ZOO, 'heldout.npy') }, runs: 3 }, 'the fp32 eval');
  baselineRun = done.runId!;
});
after(async () => {
  await s?.close();
  assert.deepEqual(markedProcesses(E2E_MARKER), [], 'no process of this test file outlives it');
});

/** Names the Compress view's recipe, runs it, waits for its job card: the card's text and perplexity. */
async function runFromCompress(page: Page, name: string): Promise<{ jobId: string; jobText: string; perplexity: number }> {
  const view = currentView(page);
  await view.locator('#run-name').fill(name);
  await view.getByRole('button', { name: 'Run', exact: true }).click();
  await waitForView(page, 'jobs');
  const jobId = await newestJobId(page);
  const status = await waitForJobEnd(page, jobId, 150_000);
  const jobText = await jobCard(page, jobId).innerText();
  assert.equal(status, 'succeeded', `${name}: ${jobText}`);
  return { jobId, jobText, perplexity: Number(/Perplexity\s+([\d.]+)/.exec(jobText)?.[1]) };
}

test('the transformer example: GPTQ int4 calibrated on its training split, perplexity in Jobs and Experiments', { timeout: 180_000 }, async () => {
  const { page } = s;
  await waitForView(page, 'library');
  const card = page.getByTestId('example-char-transformer');
  assert.match(await card.innerText(), /perplexity 6\.655/);
  await card.getByRole('button', { name: /Open example/ }).click();
  await waitForView(page, 'model');
  // the Model view says what head pruning can take
  await waitFor('the attention row', async () => /Attention\s+2 × 4 heads/.test(await currentView(page).innerText()), 15_000);

  await goto(page, 'compress');
  const view = currentView(page);
  await view.getByLabel('Quantize method').selectOption('int4');
  await view.getByLabel('Weight rounding').selectOption('gptq');
  // calibration on the training split, evaluation on the held-back text: the example's two data sets
  assert.match(await view.locator('#calibration-data').inputValue(), /transformer\/calib\.npy$/);
  const evaluate = view.getByRole('checkbox', { name: 'Evaluate the result' });
  if (!(await evaluate.isChecked())) await evaluate.check();
  assert.match(await view.locator('#evaluation-data').inputValue(), /transformer\/heldout\.npy$/);
  const { jobId, jobText, perplexity } = await runFromCompress(page, 'GPTQ int4');
  // the card's perplexity: a little above the fp32 model's 6.655
  assert.ok(perplexity > 6.6 && perplexity < 7.2, `perplexity on the job card: ${jobText}`);

  await goto(page, 'experiments');
  const experiments = currentView(page);
  const table = experiments.getByRole('table', { name: 'Runs' });
  await waitFor('both runs listed', async () => (await table.locator('tbody tr').count()) >= 2, 20_000);
  const headers = await table.locator('thead th').allInnerTexts();
  const column = headers.findIndex((h) => h.startsWith('Perplexity'));
  assert.ok(column > 0, `a Perplexity column: ${headers.join(' | ')}`);
  const cell = async (runId: string) => Number(await table.locator(`tr[data-run-id="${runId}"] td`).nth(column).innerText());
  const runId = (await (await s.rpc()).call('jobs.get', { jobId })).runId!;
  assert.equal(await cell(baselineRun), 6.655);
  assert.equal(await cell(runId), perplexity);

  // the plot by perplexity: both runs, the axis reversed so the better run is higher
  await experiments.getByLabel('y axis').selectOption('perplexity');
  const canvas = experiments.locator('canvas[aria-label="Pareto plot"]');
  await canvas.waitFor({ timeout: 20_000 });
  const summary = (await canvas.textContent()) ?? '';
  assert.match(summary, /2 runs plotted by size and perplexity/);
  // the smaller int4 model is on the front, and so is the fp32 model (better perplexity)
  assert.match(summary, /Pareto front: .*GPTQ int4.*6\.655/);
  await screenshot(page, 'experiments-language-model', { top: true });

  // Compared: the same held-back windows, window by window — the ratio's interval says whether
  // GPTQ int4's perplexity change is more than the text's noise
  await experiments.getByRole('checkbox', { name: `Select run ${baselineRun}` }).check();
  await experiments.getByRole('checkbox', { name: `Select run ${runId}` }).check();
  await experiments.getByRole('button', { name: 'Compare', exact: true }).click();
  const windows = experiments.getByRole('table', { name: 'Window-by-window comparison' });
  await windows.waitFor({ timeout: 15_000 });
  const row = await windows.locator('tbody tr').innerText();
  const ratio = /×(\d\.\d{4})\s*\[(\d\.\d{4}), (\d\.\d{4})\]/.exec(row);
  assert.ok(ratio, `a ratio with its interval: ${row}`);
  const [, r, low, high] = ratio.map(Number) as [number, number, number, number];
  assert.ok(Math.abs(r - perplexity / 6.655) < 2e-3 && low <= r && r <= high, `ratio ${r} [${low}, ${high}] for ${perplexity} vs 6.655`);
  assert.match(await experiments.innerText(), /on the same 361 windows/);
  console.log(`  window by window: ${row.replace(/\s+/g, ' ')}`);
  await windows.scrollIntoViewIfNeeded();
  await screenshot(page, 'compare-window-by-window');
  assertNoPageErrors(s);
});

test('Attention heads 50 % from the Compress view: refitted on the example\'s calibration data, half the heads, perplexity on the card', { timeout: 120_000 }, async () => {
  const { page } = s;
  await goto(page, 'compress');
  const view = currentView(page);
  // one prune step: add it (it goes before the quantize step), then remove the quantize step
  await view.getByLabel('New step kind').selectOption('prune');
  await view.getByRole('button', { name: 'Add step', exact: true }).click();
  await view.getByRole('button', { name: 'Remove step 2' }).click();
  await view.getByLabel('Prune method').selectOption('heads');
  await view.getByLabel('Sparsity (%)').fill('50');
  assert.match(await view.locator('#calib-title').innerText(), /optional: channel and head pruning refit with it/);
  const { jobId, jobText, perplexity } = await runFromCompress(page, 'heads 50 %');
  // 2 of 4 heads per block: 9.6 cut, 8.0 refitted (README)
  assert.ok(perplexity > 7.5 && perplexity < 8.5, `refitted head pruning's perplexity: ${jobText}`);
  const info = await (await s.rpc()).call('jobs.get', { jobId });
  const run = await (await s.rpc()).call('experiments.get', { runId: info.runId! });
  assert.equal(run.metrics['parametersAfter'], 233_687, 'half the heads of both blocks are gone');
  assertNoPageErrors(s);
});

test('Analyze sensitivity on the transformer: the attention scale and residual Adds ranked with the MatMuls, perplexity per layer', { timeout: 150_000 }, async () => {
  const { page } = s;
  await goto(page, 'compress');
  const view = currentView(page);
  // one static quantize step (the test before left a single prune step)
  if (await view.getByLabel('Prune method').count()) {
    await view.getByLabel('New step kind').selectOption('quantize');
    await view.getByRole('button', { name: 'Add step', exact: true }).click();
    await view.getByRole('button', { name: 'Remove step 1' }).click();
  }
  await view.getByLabel('Quantize method').selectOption('static');
  const run = await analyzeFromCompress(s, 'quantize');
  const runId = run.id;
  const rpc = await s.rpc();
  const result = run.result as { language: { floatPerplexity: number } | null; layers: { name: string; op: string; rank: number | null; perplexity: number | null }[] };
  assert.ok(result.language && result.language.floatPerplexity > 4 && result.language.floatPerplexity < 8, JSON.stringify(result.language));
  assert.equal(run.metrics['language.perplexity'], undefined, 'the analysis data\'s perplexity is not listed as the model\'s');
  const worst = result.layers.find((l) => l.rank === 1)!;
  assert.notEqual(worst.op, 'MatMul', `the most sensitive node: ${worst.name} (${worst.op})`);
  assert.ok(result.layers.filter((l) => l.rank !== null).every((l) => typeof l.perplexity === 'number'));

  await goto(page, 'experiments');
  const experiments = currentView(page);
  await experiments.locator(`tr[data-run-id="${runId}"] button.link`).click();
  const detail = experiments.locator(`section.detail[data-run-id="${runId}"]`);
  const bars = detail.locator('canvas[aria-label="Layer sensitivity"]');
  await bars.waitFor({ timeout: 20_000 });
  const detailText = await detail.innerText();
  assert.match(detailText, new RegExp(`Most sensitive: ${worst.name.replace(/\./g, '\\.')}`));
  // the summary: the float model's perplexity on the analysis windows, and each trial's
  assert.match(detailText, /Float perplexity\s+\d\.\d{3}/);
  assert.match(detailText, /All int8\s+[\d.]+ dB · [\d.]+ % · perplexity \d\.\d{3}/);
  // the bars by perplexity: every analyzed node, worst (highest) first
  await detail.getByRole('combobox', { name: 'metric' }).selectOption('quantize.perplexity');
  const text = (await bars.textContent()) ?? '';
  const values = [...text.matchAll(/: ([\d.]+)(?:;|$)/g)].map((m) => Number(m[1]));
  assert.equal(values.length, result.layers.filter((l) => l.rank !== null).length, text);
  for (let i = 1; i < values.length; i++) assert.ok(values[i]! <= values[i - 1]!, `perplexity bars worst first: ${text}`);
  await detail.getByRole('combobox', { name: 'metric' }).selectOption('quantize.outputSqnrDb');
  await detail.scrollIntoViewIfNeeded();
  await screenshot(page, 'analyze-language-model');

  // the recommendation applied from the run: static int8 as analysed, the nodes it names kept float,
  // calibrated on the analysis' data; on the held-back text it beats the all-int8 model
  const recommended = (run.result as { recommendation: { exclude: string[] } }).recommendation.exclude;
  assert.ok(recommended.length > 0);
  const perplexityOf = (r: { metrics: Record<string, number> }) => r.metrics['eval.language.perplexity'] ?? r.metrics['language.perplexity']!;
  const allInt8 = await runJobThroughApi(s, { kind: 'recipe', recipe: { name: 'static int8, all', model: join(ZOO, 'char-transformer.onnx'), steps: [{ quantize: { method: 'static', calib: { path: join(ZOO, 'calib.npy') } } }], eval: { data: { path: join(ZOO, 'heldout.npy') }, runs: 3 } } }, 'all-int8');
  const allInt8Perplexity = perplexityOf(await rpc.call('experiments.get', { runId: allInt8.runId! }));
  await detail.getByRole('button', { name: 'Quantize, keeping these float' }).click();
  await waitForView(page, 'compress');
  const compress = currentView(page);
  assert.equal(await compress.getByLabel('Quantize method').inputValue(), 'static');
  assert.match(await compress.locator('#calibration-data').inputValue(), /transformer\/calib\.npy$/);
  const evaluate = compress.getByRole('checkbox', { name: 'Evaluate the result' });
  if (!(await evaluate.isChecked())) await evaluate.check();
  const applied = await runFromCompress(page, 'static int8, recommended float');
  const appliedRun = await rpc.call('experiments.get', { runId: (await rpc.call('jobs.get', { jobId: applied.jobId })).runId! });
  const step = (appliedRun.recipe as { steps: { quantize?: { method: string; exclude: string[] } }[] }).steps[0]!.quantize!;
  assert.equal(step.method, 'static');
  assert.deepEqual([...step.exclude].sort(), [...recommended].sort());
  assert.ok(applied.perplexity < allInt8Perplexity, `held-back perplexity with the recommendation ${applied.perplexity} vs all-int8 ${allInt8Perplexity}`);
  assertNoPageErrors(s);
});

test('int4 sensitivity from an int4 step: each stored MatMul weight alone; applied, the int4 step comes back with the worst kept float', { timeout: 120_000 }, async () => {
  const { page } = s;
  await goto(page, 'compress');
  const view = currentView(page);
  // the test before left one static step with exclusions: start from a plain int4 step, block 128
  const clear = view.getByRole('button', { name: 'Clear all' });
  if (await clear.count()) await clear.click();
  await view.getByLabel('Quantize method').selectOption('int4');
  await view.getByLabel('Block size').selectOption('128');
  const run = await analyzeFromCompress(s, 'quantize');
  const result = run.result as { settings: { method: string; weightOnly: { blockSize: number } }; layers: { op: string; rank: number | null }[]; recommendation: { exclude: string[] } };
  assert.deepEqual([result.settings.method, result.settings.weightOnly.blockSize], ['int4', 128]);
  assert.equal(result.layers.filter((l) => l.rank !== null).length, 13, 'the 13 MatMuls with stored weights');
  assert.ok(result.recommendation.exclude.length > 0);

  await goto(page, 'experiments');
  const experiments = currentView(page);
  await experiments.locator(`tr[data-run-id="${run.id}"] button.link`).click();
  const detail = experiments.locator(`section.detail[data-run-id="${run.id}"]`);
  assert.match(await detail.innerText(), /All int4\s+[\d.]+ dB/);
  await detail.getByRole('button', { name: 'Quantize, keeping these float' }).click();
  await waitForView(page, 'compress');
  assert.equal(await view.getByLabel('Quantize method').inputValue(), 'int4');
  assert.equal(await view.getByLabel('Block size').inputValue(), '128');
  for (const name of result.recommendation.exclude) {
    assert.equal(await view.getByRole('button', { name: `Remove ${name} from exclusions` }).count(), 1, `${name} is excluded`);
  }

  // mixed precision: int4 but those layers, then 8-bit weights for exactly them (the exclusions skip step 2)
  await goto(page, 'experiments');
  await experiments.locator(`tr[data-run-id="${run.id}"] button.link`).click();
  await detail.getByRole('button', { name: 'Quantize, these at 8-bit weights' }).click();
  await waitForView(page, 'compress');
  assert.equal(await view.locator('fieldset.step').count(), 2);
  const methods = await view.getByLabel('Quantize method').evaluateAll((els) => els.map((e) => (e as HTMLSelectElement).value));
  assert.deepEqual(methods, ['int4', 'int8-weight']);
  const toggles = view.getByRole('checkbox', { name: /excluded layers? alone in this step/ });
  assert.deepEqual([await toggles.nth(0).isChecked(), await toggles.nth(1).isChecked()], [true, false]);
  await screenshot(page, 'compress-mixed-precision', { top: true });
  const evaluate = view.getByRole('checkbox', { name: 'Evaluate the result' });
  if (!(await evaluate.isChecked())) await evaluate.check();
  const mixed = await runFromCompress(page, 'int4 + int8 for the sensitive');
  const rpc = await s.rpc();
  const mixedRun = await rpc.call('experiments.get', { runId: (await rpc.call('jobs.get', { jobId: mixed.jobId })).runId! });
  const steps = (mixedRun.recipe as { steps: { quantize: { method: string; exclude: string[] } }[] }).steps.map((x) => x.quantize);
  assert.deepEqual(steps.map((x) => [x.method, [...x.exclude].sort()]), [['int4', [...result.recommendation.exclude].sort()], ['int8-weight', []]]);
  // held-back perplexity near fp32's 6.655
  assert.ok(mixed.perplexity > 6.6 && mixed.perplexity < 6.75, mixed.jobText);
  assertNoPageErrors(s);
});
