import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { ModelRef } from '../../api/schemas.ts';
import { writeAtomically } from '../store/atomic.ts';

/** Recently opened models, newest first, in WHITTLE_HOME/recent-models.json (a list, not store rows: nothing to query). */
const MAX_RECENT = 20;

function recentPath(home: string): string {
  return join(home, 'recent-models.json');
}

/** The list as saved; a damaged file is an empty list (it is a convenience, not a record). */
export async function loadRecentModels(home: string): Promise<ModelRef[]> {
  try {
    const parsed = z.array(ModelRef).safeParse(JSON.parse(await readFile(recentPath(home), 'utf8')));
    return parsed.success ? parsed.data : [];
  } catch {
    return [];
  }
}

/** Puts `model` first (once: an earlier entry for the same path goes) and saves the list. */
export async function rememberModel(home: string, model: ModelRef): Promise<ModelRef[]> {
  const list = [model, ...(await loadRecentModels(home)).filter((m) => m.path !== model.path)].slice(0, MAX_RECENT);
  await writeAtomically(recentPath(home), (tmp) => writeFile(tmp, JSON.stringify(list, null, 2) + '\n'));
  return list;
}
