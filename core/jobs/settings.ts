import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Settings } from '../../api/schemas.ts';
import { writeAtomically } from '../store/atomic.ts';

/**
 * The app's settings, in WHITTLE_HOME/settings.json beside the store. One job at a time by default:
 * jobs that measure latency disturb each other, and one compression job already uses every core.
 */
export const DEFAULT_SETTINGS: Settings = { ep: 'cpu', concurrency: 1, theme: 'system' };

export function settingsPath(home: string): string {
  return join(home, 'settings.json');
}

/**
 * Reads the settings; a missing file means defaults, and so does each field that is missing or
 * invalid (a hand-edited file with one bad value keeps the others).
 */
export function loadSettings(home: string): Settings {
  let raw: unknown;
  try {
    // synchronous: a tiny file, read once while the engine is made
    raw = JSON.parse(readFileSync(settingsPath(home), 'utf8'));
  } catch {
    return { ...DEFAULT_SETTINGS };
  }
  const out: Settings = { ...DEFAULT_SETTINGS };
  if (raw && typeof raw === 'object') {
    for (const key of Object.keys(DEFAULT_SETTINGS) as (keyof Settings)[]) {
      const field = Settings.shape[key].safeParse((raw as Record<string, unknown>)[key]);
      if (field.success) (out as Record<keyof Settings, unknown>)[key] = field.data;
    }
  }
  return out;
}

export async function saveSettings(home: string, settings: Settings): Promise<void> {
  await writeAtomically(settingsPath(home), (tmp) => writeFile(tmp, JSON.stringify(settings, null, 2) + '\n'));
}
