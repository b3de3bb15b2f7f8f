import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { appPaths, examplesRoot } from './paths.ts';

test('the bundles sit beside main.js, the renderer and CLI one folder up', () => {
  const p = appPaths('/app/dist/electron');
  assert.deepEqual(p, {
    renderer: join('/app/dist/renderer'),
    preload: join('/app/dist/electron/preload.cjs'),
    engineHost: join('/app/dist/electron/engine-host.js'),
    cli: join('/app/dist/cli/whittle.js'),
  });
});

test('examples: WHITTLE_FIXTURES, else the checkout\'s ../shared/fixtures, else resources/examples', () => {
  const exists = (set: string[]) => (p: string) => set.includes(p);
  const base = { mainDir: '/w/main/dist/electron', env: {}, packaged: false, resourcesPath: '/opt/W/resources' };
  assert.equal(examplesRoot({ ...base, exists: exists([join('/w/shared/fixtures')]) }), join('/w/shared/fixtures'));
  assert.equal(examplesRoot({ ...base, env: { WHITTLE_FIXTURES: '/f' }, exists: exists(['/f', join('/w/shared/fixtures')]) }), '/f');
  assert.equal(examplesRoot({ ...base, exists: exists([]) }), null);
  assert.equal(examplesRoot({ ...base, packaged: true, exists: exists([join('/opt/W/resources/examples'), join('/w/shared/fixtures')]) }), join('/opt/W/resources/examples'));
});
