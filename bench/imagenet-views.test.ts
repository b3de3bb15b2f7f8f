import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fixture } from '../core/testing/fixtures.ts';
import { buildImagenetViews, compareOnViews, photoBootstrap, type ViewSet } from './imagenet-views.ts';

test('photoBootstrap resamples photos, not views: correlated views do not narrow the interval', () => {
  // 100 photos × 10 views; 90 photos agree in every view, 10 in none
  const perView = Array.from({ length: 1000 }, (_, i) => (Math.floor(i / 10) < 90 ? 1 : 0));
  const [lo, hi] = photoBootstrap(perView, 10);
  assert.ok(lo < 0.9 && hi > 0.9, `${lo} ${hi}`);
  // what 100 independent trials give (±1.96·√(0.09/100) ≈ ±0.059), not 1,000 (±0.019)
  assert.ok(hi - lo > 0.09 && hi - lo < 0.15, `width ${hi - lo}`);
  assert.deepEqual(photoBootstrap(perView, 10), [lo, hi], 'seeded: the same inputs print the same interval');
  assert.deepEqual(photoBootstrap(new Array(200).fill(1), 2), [1, 1]);
});

test('compareOnViews: agreement per view, SQNR, and no margin noise when a probability is exactly 0', () => {
  const views = { viewsPerPhoto: 2, photos: 2 } as ViewSet;
  const ref = [[0.7, 0.2, 0.1], [0.5, 0.4, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]].map((r) => Float32Array.from(r));
  const same = compareOnViews(ref, ref, views);
  assert.equal(same.agreement, 1);
  assert.equal(same.marginNoise, 0);
  assert.equal(same.photosWithFlips, 0);
  const flipped = ref.map((r) => Float32Array.from(r));
  flipped[1] = Float32Array.of(0.4, 0.5, 0.1); // photo 0, view 1 flips
  flipped[3] = Float32Array.of(0.3, 0.3, 0); // photo 1, view 1: argmax moves to class 0 and a probability is 0
  const c = compareOnViews(ref, flipped, views);
  assert.equal(c.agreement, 0.5);
  assert.deepEqual(c.byView, [1, 0]);
  assert.equal(c.photosWithFlips, 2);
  assert.equal(c.marginNoise, null, 'an 8-bit probability of 0 has no logit');
  assert.ok(c.sqnrDb > 0 && Number.isFinite(c.sqnrDb));
});

test('the first view of every photo is the fixture\'s images.u8; the second its mirror, from the JPEG', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'whittle-views-'));
  try {
    const views = await buildImagenetViews(fixture('imagenet-100'), 2, dir);
    assert.deepEqual([views.photos, views.viewsPerPhoto, views.describe(1)], [100, 2, '256/centre/mirrored']);
    const data = readFileSync(join(dir, 'views.u8'));
    const fixtureBytes = readFileSync(fixture('imagenet-100', 'images.u8'));
    const px = 224 * 224 * 3;
    assert.equal(data.length, 200 * px);
    let worst = 0;
    for (let p = 0; p < 100; p++) {
      assert.ok(data.subarray(2 * p * px, (2 * p + 1) * px).equals(fixtureBytes.subarray(p * px, (p + 1) * px)), `photo ${p}: view 0 is images.u8`);
      // mirror view 1 back and compare with the fixture: only the JPEG decoder differs
      const mirrored = data.subarray((2 * p + 1) * px, (2 * p + 2) * px);
      let d = 0;
      for (let y = 0; y < 224; y++) for (let x = 0; x < 224; x++) for (let ch = 0; ch < 3; ch++) {
        d += Math.abs(mirrored[(y * 224 + (223 - x)) * 3 + ch]! - fixtureBytes[p * px + (y * 224 + x) * 3 + ch]!);
      }
      worst = Math.max(worst, d / px);
    }
    assert.ok(worst < 1.5, `worst photo's mean |difference| ${worst}`);
    const sidecar = JSON.parse(readFileSync(views.sidecar, 'utf8')) as { shape: number[]; labels: number[] };
    assert.deepEqual(sidecar.shape, [200, 224, 224, 3]);
    assert.deepEqual(sidecar.labels.slice(0, 4), [0, 0, 10, 10]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
