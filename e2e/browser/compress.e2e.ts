import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Locator, Page } from 'playwright-core';
import { assertNoPageErrors, currentView, goto, jobCard, newestJobId, paintedPixels, progressSeen, waitForJobEnd, waitForView, watchProgressBars } from '../lib/app.ts';
import { screenshot } from '../lib/browser.ts';
import { E2E_MARKER, markedProcesses, waitFor } from '../lib/processes.ts';
import { F } from '../lib/paths.ts';
import { analyzeFromCompress, runJobThroughApi, startSession, type Session } from '../lib/session.ts';

// Compress → Jobs → Experiments on MNIST, each run a recorded recipe with an evaluation (real engine,
// real data), so the Experiments view has accuracy and size for its Pareto plot.
let s: Session;
const EVAL_SAMPLES = '2000';

before(async () => {
  s = await startSession();
  const { page } = s;
  await waitForView(page, 'library');
  await page.getByTestId('example-mnist').getByRole('button', { name: /Open example/ }).click();
  await waitForView(page, 'model');

  // The original fp32 model evaluated on the same images, first, so that it is the oldest run: the
  // base of the comparison. The UI has no "evaluate the original" button, so this job is started
  // through the API the app itself uses.
  const done = await runJobThroughApi(s, { kind: 'eval', model: F.mnist, data: { path: F.mnistImages, preprocess: 'mnist', limit: Number(EVAL_SAMPLES) }, runs: 5 }, 'the fp32 eval');
  baselineRun = done.runId!;
});
after(async () => {
  await s?.close();
  assert.deepEqual(markedProcesses(E2E_MARKER), [], 'no process of this test file outlives it');
});

/** "Add step" with its kind picker (or the older "Add prune step" / "Add quantize step" buttons). */
async function addStep(view: Locator, kind: 'prune' | 'quantize') {
  const picker = view.getByLabel('New step kind');
  if (await picker.count()) {
    await picker.selectOption(kind);
    await view.getByRole('button', { name: 'Add step', exact: true }).click();
  } else {
    await view.getByRole('button', { name: `Add ${kind} step` }).click();
  }
}

/** Compress view: one step of the given kind and method, evaluation on EVAL_SAMPLES MNIST test images. */
async function buildRecipe(page: Page, step: { quantize: string } | { prune: string; sparsity: number }, name: string) {
  await goto(page, 'compress');
  const view = currentView(page);
  // Start from a single quantize step.
  while ((await view.locator('fieldset.step').count()) > 1) await view.getByRole('button', { name: /^Remove step/ }).first().click();
  if ('prune' in step) {
    await addStep(view, 'prune');
    await view.getByRole('button', { name: 'Remove step 2' }).click();
    await view.getByLabel('Prune method').selectOption(step.prune);
    await view.getByLabel('Sparsity (%)').fill(String(step.sparsity));
  } else {
    if (await view.getByLabel('Prune method').count()) {
      await addStep(view, 'quantize');
      await view.getByRole('button', { name: 'Remove step 1' }).click();
    }
    await view.getByLabel('Quantize method').selectOption(step.quantize);
  }
  const evaluate = view.getByRole('checkbox', { name: 'Evaluate the result' });
  if (!(await evaluate.isChecked())) await evaluate.check();
  // The example's own data is suggested (MNIST test images, preset mnist).
  assert.match(await view.locator('#evaluation-data').inputValue(), /t10k-images-idx3-ubyte\.gz$/);
  assert.equal(await view.locator('#evaluation-preprocess').inputValue(), 'mnist');
  await view.locator('#evaluation-count').fill(EVAL_SAMPLES);
  await view.locator('#eval-runs').fill('5');
  await view.locator('#run-name').fill(name);
  await view.getByTestId('size-estimate').waitFor();
}

async function runAndWait(page: Page): Promise<{ jobId: string; status: string }> {
  await watchProgressBars(page);
  await currentView(page).getByRole('button', { name: 'Run', exact: true }).click();
  await waitForView(page, 'jobs');
  const jobId = await newestJobId(page);
  const status = await waitForJobEnd(page, jobId, 120_000);
  return { jobId, status };
}

const runIds: string[] = [];
/** The run of the fp32 model's evaluation. */
let baselineRun = '';

test('Compress → dynamic int8 on MNIST: Jobs shows its progress and success', { timeout: 150_000 }, async () => {
  const { page } = s;
  await buildRecipe(page, { quantize: 'dynamic' }, 'dynamic int8');
  const estimate = await currentView(page).getByTestId('size-estimate').innerText();
  assert.match(estimate, /≈ .*(KiB|B)/);
  await screenshot(page, 'compress', { top: true });

  const t0 = Date.now();
  const { jobId, status } = await runAndWait(page);
  const card = jobCard(page, jobId);
  if (status !== 'succeeded') assert.fail(`the job ended ${status}: ${await card.innerText()}`);
  const seen = await progressSeen(page);
  console.log(`  dynamic int8 recipe: ${((Date.now() - t0) / 1000).toFixed(1)} s, progress values shown: ${seen.join(' ')}`);
  assert.ok(seen.length >= 1, 'the progress bar showed a value while the job ran');
  assert.match(await card.innerText(), /succeeded/);
  assert.ok(await card.locator('dl.summary').count(), 'the finished job shows its result summary');
  const rpc = await s.rpc();
  const info = await rpc.call('jobs.get', { jobId });
  assert.equal(info.status, 'succeeded');
  assert.ok(info.runId, 'the job is recorded as a run');
  runIds.push(info.runId!);
});

test('fp16 and 50 % magnitude pruning: the runs in Experiments with the Pareto plot; compare the fp32 eval with int8', { timeout: 240_000 }, async () => {
  const { page } = s;
  for (const [step, name] of [[{ quantize: 'fp16' }, 'fp16'], [{ prune: 'magnitude', sparsity: 50 }, 'magnitude 50 %']] as const) {
    await buildRecipe(page, step, name);
    const { jobId, status } = await runAndWait(page);
    if (status !== 'succeeded') assert.fail(`${name}: the job ended ${status}: ${await jobCard(page, jobId).innerText()}`);
    const info = await (await s.rpc()).call('jobs.get', { jobId });
    runIds.push(info.runId!);
  }
  await screenshot(page, 'jobs-finished', { top: true });

  await goto(page, 'experiments');
  const view = currentView(page);
  const rows = view.getByRole('table', { name: 'Runs' }).locator('tbody tr');
  await waitFor('four runs listed', async () => (await rows.count()) >= 4, 20_000);
  for (const id of [...runIds, baselineRun]) await view.getByRole('checkbox', { name: `Select run ${id}` }).waitFor();

  // The Pareto plot: its fallback text says how many runs it plots; the canvas is drawn.
  const canvas = view.locator('canvas[aria-label="Pareto plot"]');
  await canvas.waitFor({ timeout: 20_000 });
  const summary = await canvas.textContent();
  const plotted = Number(/(\d+) runs plotted/.exec(summary ?? '')?.[1] ?? 0);
  assert.ok(plotted >= 3, `Pareto plot: ${summary}`);
  assert.equal(await rows.count(), 4, 'three compressed runs and the fp32 evaluation');
  const painted = await waitFor('the Pareto plot to be drawn', async () => { const n = await paintedPixels(canvas); return n > 1000 ? n : 0; }, 10_000, 200);
  console.log(`  Pareto: ${summary} (${painted} pixels drawn)`);
  // Top-1 carries its 95 % interval (the engine's Wilson bounds, stored with the run): a bar per
  // point in the plot, with a legend entry, and in the table cell's tooltip.
  assert.match(await view.locator('.pareto .legend').innerText(), /95 % interval/);
  const top1Cell = view.locator(`tr[data-run-id="${baselineRun}"] td.num`).nth(1);
  assert.match(await top1Cell.getAttribute('title') ?? '', /accuracy\.top1\n95 % interval \d+\.\d–\d+\.\d %/);
  await canvas.scrollIntoViewIfNeeded();
  await screenshot(page, 'experiments');

  // The same screen in the dark theme (the system preference; the theme setting is 'system').
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.waitForFunction(() => document.documentElement.dataset.theme === 'dark', undefined, { timeout: 5_000 });
  await screenshot(page, 'experiments-dark');
  await page.emulateMedia({ colorScheme: 'light' });

  // Compare the fp32 baseline with dynamic int8, side by side.
  await view.getByRole('checkbox', { name: `Select run ${baselineRun}` }).check();
  await view.getByRole('checkbox', { name: `Select run ${runIds[0]}` }).check();
  await view.getByRole('button', { name: 'Compare', exact: true }).click();
  const compared = view.getByRole('table', { name: 'Metrics compared' });
  await compared.waitFor({ timeout: 15_000 });
  const header = await compared.locator('thead').innerText();
  const body = await compared.locator('tbody').innerText();
  assert.ok((await compared.locator('tbody tr').count()) >= 2, 'metrics are compared');
  assert.match(body, /top1|Top-1|accuracy/i, `accuracy is among the compared metrics:\n${body.slice(0, 400)}`);
  assert.match(header, /eval[^]*base[^]*recipe/, 'the fp32 evaluation is the base of the deltas');
  console.log(`  compare: ${header.replace(/\s+/g, ' ')} — ${await compared.locator('tbody tr').count()} metrics`);
  // Both runs kept every sample's top-1 class: the same images compared sample by sample (McNemar)
  const paired = view.getByRole('table', { name: 'Sample-by-sample comparison' });
  await paired.waitFor({ timeout: 15_000 });
  const pairedText = await paired.locator('tbody').innerText();
  assert.match(pairedText, /top-1 accuracy/, `the fp32 eval and the int8 recipe are paired on accuracy:\n${pairedText}`);
  console.log(`  sample by sample: ${pairedText.replace(/\s+/g, ' ')}`);
});

test('export a run: the downloaded artifact runs in onnxruntime; the runs table exports as CSV', { timeout: 90_000 }, async () => {
  const { page } = s;
  const view = currentView(page);
  const runId = runIds[0]!; // dynamic int8
  await view.locator(`tr[data-run-id="${runId}"] button.link`).click();
  const detail = view.locator(`section.detail[data-run-id="${runId}"]`);
  await detail.getByRole('button', { name: 'Export run' }).click();
  const exported = detail.locator('.exported');
  await exported.waitFor({ timeout: 30_000 });
  const links = exported.locator('a[download]');
  const names = await links.allInnerTexts();
  console.log(`  exported: ${names.join(', ')}`);
  const onnxLink = links.filter({ hasText: /\.onnx$/ }).first();
  assert.ok(await onnxLink.count(), `an .onnx artifact is offered for download (${names.join(', ')})`);
  assert.ok(names.some((n) => /\.(md|html)$/.test(n)), 'a readable report is exported with it');

  const [download] = await Promise.all([page.waitForEvent('download'), onnxLink.click()]);
  const file = join(s.server.work, download.suggestedFilename());
  await download.saveAs(file);
  const ort = await import('onnxruntime-node');
  const session = await ort.InferenceSession.create(file);
  const input = session.inputNames[0]!;
  const out = await session.run({ [input]: new ort.Tensor('float32', new Float32Array(28 * 28).fill(0.5), [1, 1, 28, 28]) });
  const logits = out[session.outputNames[0]!]!;
  assert.deepEqual(logits.dims, [1, 10]);
  assert.ok([...(logits.data as Float32Array)].every(Number.isFinite));
  await session.release();
  console.log(`  ${download.suggestedFilename()} (${statSync(file).size} bytes) runs in onnxruntime-node: output ${logits.dims.join('×')}`);

  // The runs table as CSV: with no selection, every run of this session is in it.
  const clear = view.getByRole('button', { name: 'Clear selection' });
  if (await clear.count()) await clear.click();
  const [csv] = await Promise.all([page.waitForEvent('download'), view.getByRole('button', { name: 'Export CSV' }).click()]);
  const text = readFileSync(await csv.path(), 'utf8');
  for (const id of runIds) assert.ok(text.includes(id), `the CSV lists run ${id}`);
});

test('static int8 with GPTQ weight rounding and bias correction: int4 then needs calibration data, and the recorded recipe says gptq', { timeout: 150_000 }, async () => {
  const { page } = s;
  await buildRecipe(page, { quantize: 'int4' }, 'int4 rtn');
  const view = currentView(page);
  const help = view.locator('fieldset.step p.help');
  assert.doesNotMatch(await help.innerText(), /Uses the calibration data below/);
  await view.getByLabel('Weight rounding').selectOption('gptq');
  assert.match(await help.innerText(), /Uses the calibration data below/, 'GPTQ reads the calibration data');
  // embedding tables: offered for the MatMulNBits format, whose GatherBlockQuantized holds them
  assert.equal(await view.getByLabel('Also embedding tables').count(), 1);
  await view.getByLabel('Format').selectOption('dq');
  assert.equal(await view.getByLabel('Also embedding tables').count(), 0, 'the DQ form has no quantized Gather');
  await view.getByLabel('Format').selectOption('matmulnbits');
  const ownArithmetic = view.getByLabel('int8 in the model\'s own arithmetic');
  assert.equal(await ownArithmetic.count(), 0, 'offered with static or dynamic int8 steps only');

  await buildRecipe(page, { quantize: 'static' }, 'static int8 gptq');
  await view.getByLabel('Weight rounding').selectOption('gptq');
  await view.getByLabel('Per-channel weights').check();
  assert.equal(await view.getByLabel('Symmetric activation ranges').count(), 0, 'MinMax has no histogram to make symmetric');
  await view.getByLabel('Moving average of batch ranges').check();
  await view.getByLabel('Bias correction').check();
  // int8 weights: automatic (the engine's CPU decides) unless chosen; 7 bits chosen here, whatever the CPU
  const bits = view.getByLabel('int8 weight bits');
  assert.equal(await bits.inputValue(), 'auto');
  await bits.selectOption('7');
  await ownArithmetic.check();
  await screenshot(page, 'compress-static-gptq', { top: true });
  const { jobId, status } = await runAndWait(page);
  if (status !== 'succeeded') assert.fail(`the job ended ${status}: ${await jobCard(page, jobId).innerText()}`);
  const rpc = await s.rpc();
  const info = await rpc.call('jobs.get', { jobId });
  const run = await rpc.call('experiments.get', { runId: info.runId! });
  const steps = (run.recipe as { steps: { quantize?: { method: string; algorithm?: string; perChannel?: boolean; movingAverage?: boolean; biasCorrection?: boolean; reduceRange?: boolean } }[] }).steps;
  assert.deepEqual(steps.map((x) => [x.quantize?.method, x.quantize?.algorithm, x.quantize?.perChannel, x.quantize?.movingAverage, x.quantize?.biasCorrection, x.quantize?.reduceRange]), [['static', 'gptq', true, true, true, true]]);
  // MNIST's two Convs and its Gemm (the MatMul with its bias Add) each had their bias corrected
  const done = (run.result as { steps: { biasCorrection?: { layers: { node: string }[]; levels: number } }[] }).steps[0]?.biasCorrection;
  assert.equal(done?.layers.length, 3, JSON.stringify(done));
  assert.equal(done?.levels, 3);
  const card = await jobCard(page, jobId).innerText();
  assert.match(card, /minmax \+ gptq \+ bias correction · 256 samples/, card);
  assert.match(card, /Bias corrected\s*3 layers/, card);
  assert.match(card, /Weights\s*int8 in 7 bits \(reduce range\)/, card);
  assert.match(card, /Arithmetic\s*int8 as the model defines it/, card);
  assert.equal((run.recipe as { eval?: { exactInt8?: boolean } }).eval?.exactInt8, true);
  // what onnxruntime runs of it: every layer an integer kernel, nothing float between Q/DQ pairs
  assert.match(card, /Int8 kernels\s*2 QLinearConv, 1 QGemm/, card);
  assert.doesNotMatch(card, /Float between Q\/DQ/, card);
  await jobCard(page, jobId).scrollIntoViewIfNeeded();
  await screenshot(page, 'jobs-static-runtime');
  const top1 = run.metrics['eval.accuracy.top1'] ?? run.metrics['accuracy.top1'];
  assert.ok(top1 !== undefined && top1 >= 0.98, `top-1 ${top1}: ${JSON.stringify(run.metrics)}`);
});

test('channel pruning with the example calibration data refits the next layers; the recorded step carries the data', { timeout: 150_000 }, async () => {
  const { page } = s;
  await buildRecipe(page, { prune: 'channel', sparsity: 50 }, 'channel 50 % refit');
  const view = currentView(page);
  await view.getByLabel('Round channels to').fill('1');
  // calibration data is optional for channel pruning: suggested from the example, so it is used
  assert.match(await view.locator('#calib-title').innerText(), /optional: channel and head pruning refit with it/);
  assert.match(await view.locator('fieldset.step p.help').innerText(), /refitted by least squares/);
  await screenshot(page, 'compress-channel-refit', { top: true });
  const { jobId, status } = await runAndWait(page);
  if (status !== 'succeeded') assert.fail(`the job ended ${status}: ${await jobCard(page, jobId).innerText()}`);
  const rpc = await s.rpc();
  const info = await rpc.call('jobs.get', { jobId });
  const run = await rpc.call('experiments.get', { runId: info.runId! });
  const steps = (run.recipe as { steps: { prune?: { method: string; roundTo?: number; calib?: { path: string } } }[] }).steps;
  assert.equal(steps[0]?.prune?.method, 'channel');
  assert.equal(steps[0]?.prune?.roundTo, 1);
  assert.match(steps[0]?.prune?.calib?.path ?? '', /t10k-images-idx3-ubyte\.gz$/);
  // half of both conv groups removed and the next layers refitted on 128 images: 94.75 % on these
  // 2,000 (when only cut, 74 % on the 9,744 after the calibration images; refitted on 256, 96.6 %)
  const top1 = run.metrics['eval.accuracy.top1'] ?? run.metrics['accuracy.top1'];
  assert.ok(top1 !== undefined && top1 >= 0.92, `top-1 ${top1}: ${JSON.stringify(run.metrics)}`);
  assert.equal(run.metrics['parametersAfter'], 2202);
});

test('Analyze sensitivity uses the steps being built: static entropy, per-channel, GPTQ', { timeout: 150_000 }, async () => {
  const { page } = s;
  await buildRecipe(page, { quantize: 'static' }, 'analysis settings');
  const view = currentView(page);
  await view.getByLabel('Calibration method').selectOption('entropy');
  assert.equal(await view.getByLabel('Moving average of batch ranges').count(), 0, 'the moving average is for MinMax only');
  await view.getByLabel('Symmetric activation ranges').check();
  await view.getByLabel('Weight rounding').selectOption('gptq');
  await view.getByLabel('Per-channel weights').check();
  await view.getByLabel('Analyze for').selectOption('quantize');
  await view.getByLabel('Check on held-out samples').fill('16');
  const run = await analyzeFromCompress(s, 'quantize');
  assert.ok(run.command.includes('--recipe'), run.command.join(' '));
  assert.deepEqual(run.command.slice(run.command.indexOf('--holdout'), run.command.indexOf('--holdout') + 2), ['--holdout', '16']);
  const result = run.result as { data: { n: number; offset: number }; settings: { calibration: string; perChannel: boolean; algorithm: string; tuning: { symmetric?: boolean } }; recommendation: { heldOut: { n: number; offset: number } } };
  const settings = result.settings;
  assert.deepEqual([settings.calibration, settings.perChannel, settings.algorithm, settings.tuning.symmetric], ['entropy', true, 'gptq', true]);
  // the recommendation measured again on the 16 samples after the analysed ones, and the job card says so
  assert.deepEqual([result.recommendation.heldOut.n, result.recommendation.heldOut.offset], [16, result.data.offset + result.data.n]);
  await currentView(page).getByText('Held out (16)').first().waitFor();
  await screenshot(page, 'jobs-analysis-held-out', { top: true });
});

test('a TF.js model: uint8 with evaluation runs as a recipe, its artifact a model.json with its shard', { timeout: 150_000 }, async () => {
  const { page } = s;
  await goto(page, 'library');
  await page.getByTestId('example-tfjs-automl-flowers').getByRole('button', { name: /Open example/ }).click();
  await waitForView(page, 'model');
  await goto(page, 'compress');
  const view = currentView(page);
  while ((await view.locator('fieldset.step').count()) > 1) await view.getByRole('button', { name: /^Remove step/ }).first().click();
  assert.equal(await view.getByLabel('Quantize method').inputValue(), 'uint8', 'a TF.js model starts from its own quantizer');
  assert.ok(await view.getByRole('button', { name: 'Analyze sensitivity' }).isDisabled(), 'analysis is ONNX-only: not offered for a TF.js model');
  const evaluate = view.getByRole('checkbox', { name: 'Evaluate the result' });
  if (!(await evaluate.isChecked())) await evaluate.check();
  assert.match(await view.locator('#evaluation-data').inputValue(), /daisy\.jpg$/);
  await view.locator('#eval-runs').fill('3');
  await view.locator('#run-name').fill('flowers uint8');
  const { jobId, status } = await runAndWait(page);
  if (status !== 'succeeded') assert.fail(`the job ended ${status}: ${await jobCard(page, jobId).innerText()}`);
  const rpc = await s.rpc();
  const run = await rpc.call('experiments.get', { runId: (await rpc.call('jobs.get', { jobId })).runId! });
  assert.equal(run.kind, 'recipe');
  assert.deepEqual(run.artifacts.map((a) => a.name).sort(), ['group1-shard1of1.bin', 'model.json', 'predictions.json'], 'the model, its shard, and the per-sample predictions of its evaluation');
  assert.ok(run.metrics['eval.agreement.top1'] !== undefined, Object.keys(run.metrics).join(', '));
});

test('no uncaught exception in the page', () => assertNoPageErrors(s));
