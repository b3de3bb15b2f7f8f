import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { createPassContext } from '../../../core/passes/pass.ts';
import { fixture } from '../../../core/testing/fixtures.ts';
import { loadTrainingTf } from '../../../core/train/runtime.ts';
import type { TfModule } from '../../runtimes/tfjs.ts';
import { loadDigits, runLottery } from './digits.ts';

let tf: TfModule;
before(async () => {
  tf = (await loadTrainingTf({ convolutions: false })).tf;
});

test('the digits split is fixed by its seed, disjoint and complete, with pixels scaled to [0, 1]', async () => {
  const a = await loadDigits(tf, fixture('digits'), 597, 1797);
  const b = await loadDigits(tf, fixture('digits', 'digits_X.npy'), 597, 1797);
  assert.equal(a.trainCount, 1200);
  assert.deepEqual(a.train.x.shape, [1200, 64]);
  assert.deepEqual(a.train.y.shape, [1200, 10]);
  assert.deepEqual(a.test.labels, b.test.labels);
  assert.deepEqual(a.test.x.dataSync(), b.test.x.dataSync());
  const pixels = [...a.train.x.dataSync(), ...a.test.x.dataSync()];
  assert.ok(pixels.every((v) => v >= 0 && v <= 1) && pixels.some((v) => v === 1));
  // Every sample lands in exactly one part: the pixel sums of the parts add up to the whole file's.
  const sum = (xs: ArrayLike<number>) => Array.from(xs).reduce((s, v) => s + v, 0);
  const whole = await loadDigits(tf, fixture('digits'), 1, 1797);
  assert.ok(Math.abs(sum(pixels) - sum([...whole.train.x.dataSync(), ...whole.test.x.dataSync()])) < 1e-3);
  const other = await loadDigits(tf, fixture('digits'), 597, 1);
  assert.notDeepEqual(other.test.labels, a.test.labels);
});

test('a small lottery run: per-layer pruning of p of the rest, tickets and controls scored, reproducible', async () => {
  const options = { data: fixture('digits'), hidden: [16], epochs: 2, rounds: 2, seeds: [0] };
  const r = await runLottery(tf, options, createPassContext());
  // Kernels 64×16 and 16×10; 20 % of each layer's remaining weights per round.
  assert.deepEqual(r.rows.map((row) => row.kept), [1184, 819 + 128, 655 + 102]);
  assert.equal(r.parameters, 1184 + 26);
  assert.equal(r.rows[0]!.random, null);
  for (const row of r.rows) assert.ok(row.ticket > 0.5 && row.ticket <= 1, `round ${row.round}: ${row.ticket}`);
  for (const row of r.rows.slice(1)) assert.ok(row.random! > 0.1 && row.random! <= 1);
  assert.ok(r.runs[0]!.rounds.every((round) => round.maskViolations === 0));
  const again = await runLottery(tf, options, createPassContext());
  assert.deepEqual(again.rows, r.rows, 'the same seeds give the same table');
});
