import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildMenuTemplate, menuItemsById, type MenuItemSpec } from './menu.ts';

function actions() {
  const calls: string[] = [];
  return { calls, actions: { openModel: () => void calls.push('open'), exportRun: () => void calls.push('export'), revealRun: () => void calls.push('reveal') } };
}
const labels = (t: MenuItemSpec[]) => t.map((i) => i.label ?? i.role);

test('File has Open Model…, Export Run… and Reveal, wired to the callbacks', () => {
  const { calls, actions: a } = actions();
  const t = buildMenuTemplate({ platform: 'linux', appName: 'Whittle', runSelected: true, canReveal: true, developer: false }, a);
  assert.deepEqual(labels(t), ['&File', '&Edit', '&View', '&Window', '&Help']);
  const items = menuItemsById(t);
  assert.equal(items.get('open-model')!.accelerator, 'CmdOrCtrl+O');
  items.get('open-model')!.click!();
  items.get('export-run')!.click!();
  items.get('reveal-run')!.click!();
  assert.deepEqual(calls, ['open', 'export', 'reveal']);
  assert.equal(items.get('reveal-run')!.label, 'Reveal in Folder');
  assert.equal(items.get('export-run')!.enabled, true);
});

test('Export and Reveal are disabled until a run (with files) is on screen', () => {
  const { actions: a } = actions();
  const none = menuItemsById(buildMenuTemplate({ platform: 'win32', appName: 'Whittle', runSelected: false, canReveal: false, developer: false }, a));
  assert.equal(none.get('export-run')!.enabled, false);
  assert.equal(none.get('reveal-run')!.enabled, false);
  assert.equal(none.get('reveal-run')!.label, 'Show in Explorer');
  const noFiles = menuItemsById(buildMenuTemplate({ platform: 'linux', appName: 'Whittle', runSelected: true, canReveal: false, developer: false }, a));
  assert.equal(noFiles.get('export-run')!.enabled, true);
  assert.equal(noFiles.get('reveal-run')!.enabled, false);
});

test('macOS gets the app menu and its window menu; developer items only when asked', () => {
  const { actions: a } = actions();
  const mac = buildMenuTemplate({ platform: 'darwin', appName: 'Whittle', runSelected: false, canReveal: false, developer: false }, a);
  assert.deepEqual(labels(mac), ['Whittle', '&File', '&Edit', '&View', 'windowMenu']);
  assert.equal(menuItemsById(mac).get('reveal-run')!.label, 'Reveal in Finder');
  const roles = (t: MenuItemSpec[]): string[] => t.flatMap((i) => [...(i.role ? [i.role] : []), ...roles(i.submenu ?? [])]);
  assert.ok(!roles(mac).includes('toggleDevTools'));
  assert.ok(roles(mac).includes('pasteAndMatchStyle'));
  const dev = buildMenuTemplate({ platform: 'linux', appName: 'Whittle', runSelected: false, canReveal: false, developer: true }, a);
  assert.ok(roles(dev).includes('toggleDevTools'));
  assert.ok(roles(dev).includes('reload'));
  for (const r of ['undo', 'redo', 'cut', 'copy', 'paste', 'selectAll', 'zoomIn', 'zoomOut', 'resetZoom', 'togglefullscreen', 'minimize', 'quit']) assert.ok(roles(dev).includes(r), r);
});
