import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { assertNoPageErrors, currentView, goto, paintedPixels, waitForView } from '../lib/app.ts';
import { screenshot } from '../lib/browser.ts';
import { dropFile } from '../lib/dnd.ts';
import { F } from '../lib/paths.ts';
import { E2E_MARKER, markedProcesses, waitFor } from '../lib/processes.ts';
import { startSession, type Session } from '../lib/session.ts';
import { int8Saturation } from '../../native-models/runtimes/cpu-int8.ts';

// Library → Model view on the real MNIST fixture: examples, typed path, drop upload, a corrupt file.
let s: Session;
/** What `whittle inspect --json` says about MNIST: the figures the Model view must show. */
let inspected: { parameters: number; layers: { name: string; parameters: number }[] };

before(async () => {
  s = await startSession();
  inspected = s.server.cli(['inspect', F.mnist]) as typeof inspected;
});
after(async () => {
  await s?.close();
  assert.deepEqual(markedProcesses(E2E_MARKER), [], 'no process of this test file outlives it');
});

const count = (n: number) => n.toLocaleString('en-US');

async function expectMnistModelView(name: string) {
  const { page } = s;
  await waitForView(page, 'model');
  const view = currentView(page);
  await view.locator('h1#model-title', { hasText: name }).waitFor();
  const facts = view.locator('dl.facts');
  await facts.waitFor({ timeout: 30_000 });
  const params = await facts.locator('dt:text-is("Parameters") + dd').innerText();
  assert.equal(params.trim(), count(inspected.parameters), `Parameters: the figure inspect gives (${inspected.parameters})`);
  const table = view.getByRole('table', { name: 'Layers' });
  for (const layer of inspected.layers) await table.getByRole('button', { name: layer.name, exact: true }).waitFor();
  assert.equal(await table.locator('tbody tr:not(.spacer-row)').count(), inspected.layers.length);
}

test('the Library lists the built-in examples', { timeout: 60_000 }, async () => {
  const { page } = s;
  await waitForView(page, 'library');
  const mnist = page.getByTestId('example-mnist');
  await mnist.waitFor();
  assert.match(await mnist.innerText(), /MNIST CNN/);
  assert.equal(await mnist.getByRole('button', { name: /Open example/ }).isEnabled(), true, 'the MNIST example is available');
  const titles = await currentView(page).locator('ul.examples li h3').allInnerTexts();
  assert.ok(titles.length >= 4, `examples listed: ${titles.join(', ')}`);
  assert.ok(titles.some((t) => /SqueezeNet/.test(t)), 'SqueezeNet is among them');
});

test('opening the MNIST example shows its parameters, the layer table and a drawn weight histogram', { timeout: 90_000 }, async () => {
  const { page } = s;
  await page.getByTestId('example-mnist').getByRole('button', { name: /Open example/ }).click();
  await expectMnistModelView('mnist.onnx');

  // Select the first conv layer: the histogram of its weights is drawn on a canvas.
  const first = inspected.layers[0]!;
  const view = currentView(page);
  await view.getByRole('table', { name: 'Layers' }).getByRole('button', { name: first.name, exact: true }).click();
  const stats = view.getByTestId('histogram-stats');
  await stats.waitFor({ timeout: 30_000 });
  assert.match(await stats.innerText(), new RegExp(`${count(first.parameters)} values`));
  const canvas = view.locator('.hist canvas');
  await canvas.waitFor();
  try {
    // The canvas may be re-created as the histogram arrives: poll the current one.
    const painted = await waitFor('the histogram to be drawn', async () => {
      const n = await paintedPixels(canvas);
      return n > 500 ? n : 0;
    }, 15_000, 200);
    assert.ok(painted > 500, `the histogram canvas has drawn pixels (${painted})`);
    // Arrow down moves to the next layer and its histogram.
    await page.keyboard.press('ArrowDown');
    await view.locator('.hist h3', { hasText: inspected.layers[1]!.name }).waitFor();
    await view.getByTestId('histogram-stats').filter({ hasText: `${count(inspected.layers[1]!.parameters)} values` }).waitFor();
  } finally {
    await screenshot(page, 'model'); // also when the histogram is missing: the picture shows what went wrong
  }
});

test('typing the absolute path opens the model', { timeout: 60_000 }, async () => {
  const { page } = s;
  await goto(page, 'library');
  await page.locator('#model-path').fill(F.mnist);
  await page.getByRole('button', { name: 'Open path' }).click();
  await expectMnistModelView('mnist.onnx');
});

test('dropping a file on the window uploads it and opens it', { timeout: 60_000 }, async () => {
  const { page, server } = s;
  await goto(page, 'library');
  await dropFile(page, 'dropped-mnist.onnx', readFileSync(F.mnist));
  await expectMnistModelView('dropped-mnist.onnx');
  const path = await currentView(page).locator('p.path').innerText();
  assert.ok(path.startsWith(join(server.home, 'uploads')), `the dropped file was uploaded into WHITTLE_HOME/uploads (${path})`);
  assert.ok(path.endsWith('dropped-mnist.onnx'));
  assert.deepEqual(readFileSync(path), readFileSync(F.mnist), 'the upload is byte-identical');

  // The Open… button's file input takes the same way.
  await goto(page, 'library');
  await page.getByTestId('open-file-input').setInputFiles({ name: 'picked-mnist.onnx', mimeType: 'application/octet-stream', buffer: readFileSync(F.mnist) });
  await expectMnistModelView('picked-mnist.onnx');
});

test('a corrupt model shows an error naming the file, dropped or typed', { timeout: 60_000 }, async () => {
  const { page, server } = s;
  const bytes = readFileSync(F.mnist);
  const corrupt = join(server.work, 'truncated-mnist.onnx');
  writeFileSync(corrupt, bytes.subarray(0, Math.floor(bytes.length / 3)));

  await goto(page, 'library');
  await page.locator('#model-path').fill(corrupt);
  await page.getByRole('button', { name: 'Open path' }).click();
  const alert = currentView(page).getByRole('alert').filter({ hasText: 'Could not open truncated-mnist.onnx' });
  await alert.waitFor({ timeout: 30_000 });
  const text = await alert.innerText();
  assert.match(text, /truncated-mnist\.onnx/);
  assert.ok(!/\n\s+at /.test(text), 'no stack trace');
  console.log(`  corrupt (typed): ${text.replace(/\s+/g, ' ').slice(0, 240)}`);
  await alert.getByRole('button', { name: 'Dismiss error' }).click();
  await alert.waitFor({ state: 'detached' });

  await dropFile(page, 'dropped-broken.onnx', bytes.subarray(0, 1000));
  await waitForView(page, 'library');
  const dropped = currentView(page).getByRole('alert').filter({ hasText: 'dropped-broken.onnx' });
  await dropped.waitFor({ timeout: 30_000 });
  console.log(`  corrupt (dropped): ${(await dropped.innerText()).replace(/\s+/g, ' ').slice(0, 240)}`);
  await dropped.getByRole('button', { name: 'Dismiss error' }).click();
  assert.equal(await page.locator('h1#model-title').innerText(), 'picked-mnist.onnx', 'the open model stayed open');

  // The Library as a returning user sees it: recent models and the examples.
  await page.locator('#model-path').fill('');
  await currentView(page).locator('ul.recent li').first().waitFor();
  await screenshot(page, 'library');
});

test('Devices & settings says what int8 does on this CPU, as `whittle devices` does', { timeout: 60_000 }, async () => {
  const { page } = s;
  await goto(page, 'devices');
  const int8 = currentView(page).getByTestId('int8-kernels');
  await int8.waitFor({ timeout: 30_000 });
  const text = (await int8.innerText()).replace(/\s+/g, ' ');
  const cpu = int8Saturation();
  assert.match(text, cpu.saturates ? /u8×s8 kernels saturate 8-bit weights .* kept in 7 bits by default/ : /int8 kernels are exact .* keep 8 bits/, text);
  assert.ok(text.includes(cpu.detail), `${text} names ${cpu.detail}`);
  console.log(`  devices: ${text}`);
  await screenshot(page, 'devices');
});

test('no uncaught exception in the page', () => assertNoPageErrors(s));
