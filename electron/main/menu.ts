/**
 * The native menu, as data built from injected callbacks (main.ts hands it to
 * Menu.buildFromTemplate; the type below is checked there against Electron's own). Standard
 * Edit/View/Window menus come from Electron's roles, so shortcuts and platform conventions are
 * the system's.
 */

type Role =
  | 'about' | 'services' | 'hide' | 'hideOthers' | 'unhide' | 'quit' | 'close'
  | 'undo' | 'redo' | 'cut' | 'copy' | 'paste' | 'pasteAndMatchStyle' | 'delete' | 'selectAll'
  | 'reload' | 'forceReload' | 'toggleDevTools' | 'resetZoom' | 'zoomIn' | 'zoomOut' | 'togglefullscreen'
  | 'minimize' | 'zoom' | 'front' | 'windowMenu' | 'help';

export interface MenuItemSpec {
  id?: string;
  label?: string;
  role?: Role;
  type?: 'normal' | 'separator' | 'submenu';
  accelerator?: string;
  enabled?: boolean;
  click?: () => void;
  submenu?: MenuItemSpec[];
}

export interface MenuActions {
  openModel(): void;
  exportRun(): void;
  revealRun(): void;
}

export interface MenuState {
  platform: string;
  appName: string;
  /** A run is on screen: Export… and Reveal in Folder apply to it. */
  runSelected: boolean;
  /** The run has a file to reveal. */
  canReveal: boolean;
  /** Reload and developer tools (unpackaged builds, or WHITTLE_DEVTOOLS=1). */
  developer: boolean;
}

const separator: MenuItemSpec = { type: 'separator' };

export function buildMenuTemplate(state: MenuState, actions: MenuActions): MenuItemSpec[] {
  const mac = state.platform === 'darwin';
  const revealLabel = mac ? 'Reveal in Finder' : state.platform === 'win32' ? 'Show in Explorer' : 'Reveal in Folder';
  const file: MenuItemSpec = {
    label: '&File',
    submenu: [
      { id: 'open-model', label: 'Open Model…', accelerator: 'CmdOrCtrl+O', click: actions.openModel },
      separator,
      { id: 'export-run', label: 'Export Run…', accelerator: 'CmdOrCtrl+E', enabled: state.runSelected, click: actions.exportRun },
      { id: 'reveal-run', label: revealLabel, accelerator: 'CmdOrCtrl+Shift+R', enabled: state.runSelected && state.canReveal, click: actions.revealRun },
      separator,
      mac ? { role: 'close' } : { role: 'quit', label: 'E&xit' },
    ],
  };
  const edit: MenuItemSpec = {
    label: '&Edit',
    submenu: [
      { role: 'undo' }, { role: 'redo' }, separator,
      { role: 'cut' }, { role: 'copy' }, { role: 'paste' },
      ...(mac ? [{ role: 'pasteAndMatchStyle' } as MenuItemSpec] : []),
      { role: 'delete' }, separator, { role: 'selectAll' },
    ],
  };
  const view: MenuItemSpec = {
    label: '&View',
    submenu: [
      ...(state.developer ? [{ role: 'reload' }, { role: 'forceReload' }, { role: 'toggleDevTools' }, separator] as MenuItemSpec[] : []),
      { role: 'resetZoom' }, { role: 'zoomIn' }, { role: 'zoomOut' }, separator,
      { role: 'togglefullscreen' },
    ],
  };
  const windowMenu: MenuItemSpec = mac
    ? { role: 'windowMenu' }
    : { label: '&Window', submenu: [{ role: 'minimize' }, { role: 'close' }] };
  const help: MenuItemSpec = { role: 'help', label: '&Help', submenu: [{ role: 'about', label: `About ${state.appName}` }] };
  const appMenu: MenuItemSpec[] = mac
    ? [{
        label: state.appName,
        submenu: [
          { role: 'about' }, separator, { role: 'services' }, separator,
          { role: 'hide' }, { role: 'hideOthers' }, { role: 'unhide' }, separator, { role: 'quit' },
        ],
      }]
    : [];
  return [...appMenu, file, edit, view, windowMenu, ...(mac ? [] : [help])];
}

/** Every item with an id, flattened (tests, and main's enabling of items without a rebuild). */
export function menuItemsById(template: readonly MenuItemSpec[]): Map<string, MenuItemSpec> {
  const out = new Map<string, MenuItemSpec>();
  const walk = (items: readonly MenuItemSpec[]) => {
    for (const item of items) {
      if (item.id) out.set(item.id, item);
      if (item.submenu) walk(item.submenu);
    }
  };
  walk(template);
  return out;
}
