import type { Settings } from '../../../api/schemas.ts';

/**
 * Applies the theme to <html data-theme>: the `theme` setting, or the system's preference when it
 * is 'system' (followed live). The choice is remembered locally too, so the next start does not
 * flash the wrong theme before settings arrive.
 */
const STORAGE_KEY = 'whittle.theme';
const media = typeof matchMedia === 'function' ? matchMedia('(prefers-color-scheme: dark)') : null;

export function storedTheme(): Settings['theme'] {
  try {
    const v = localStorage.getItem(STORAGE_KEY);
    return v === 'light' || v === 'dark' ? v : 'system';
  } catch {
    return 'system';
  }
}

export function resolveTheme(setting: Settings['theme']): 'light' | 'dark' {
  if (setting === 'light' || setting === 'dark') return setting;
  return media?.matches ? 'dark' : 'light';
}

export function applyTheme(setting: Settings['theme']): 'light' | 'dark' {
  const resolved = resolveTheme(setting);
  document.documentElement.dataset.theme = resolved;
  try {
    localStorage.setItem(STORAGE_KEY, setting);
  } catch {
    /* private mode: fine */
  }
  return resolved;
}

/** Calls back when the system's light/dark preference changes; returns a stop function. */
export function onSystemThemeChange(callback: () => void): () => void {
  if (!media) return () => {};
  media.addEventListener('change', callback);
  return () => media.removeEventListener('change', callback);
}
