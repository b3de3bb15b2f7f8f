/**
 * The label files an image folder may carry:
 * - labels.json listing files: `[{file, label}, ...]` (file also `path`/`filename`/`image`, label
 *   also `class`/`target`/`y`), or `{"a.jpg": 3, ...}`; labels are class indices or class names.
 *   Files are relative to the labels.json.
 * - labels.json naming classes: `["cat", "dog"]` or `{"cat": 0, "dog": 1}` (keys that are not
 *   image files), for an ImageFolder whose class folders it names.
 * - classes.txt: one class name a line; its order gives the class indices.
 */
import { readFile } from 'node:fs/promises';
import { badInput } from '../../../api/errors.ts';
import { IMAGE_EXTENSIONS } from './image-decode.ts';

export type LabelsJson =
  | { type: 'files'; items: { file: string; label: number | string }[] }
  | { type: 'classes'; names: string[] };

const FILE_KEYS = ['file', 'path', 'filename', 'image'];
const LABEL_KEYS = ['label', 'class', 'target', 'y'];

function asLabel(v: unknown, file: string, where: string): number | string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return v;
  throw badInput(file, `${where}: label ${JSON.stringify(v)} is neither a class index nor a class name`);
}

export async function readLabelsJson(file: string): Promise<LabelsJson> {
  let doc: unknown;
  try {
    doc = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw badInput(file, `is not valid JSON (${(e as Error).message})`);
  }
  if (Array.isArray(doc)) {
    if (doc.every((x) => typeof x === 'string')) return { type: 'classes', names: doc as string[] };
    return {
      type: 'files',
      items: doc.map((item, i) => {
        if (typeof item !== 'object' || item === null) throw badInput(file, `entry ${i} is not an object with a file and a label`);
        const rec = item as Record<string, unknown>;
        const f = FILE_KEYS.map((k) => rec[k]).find((v) => typeof v === 'string') as string | undefined;
        const labelKey = LABEL_KEYS.find((k) => k in rec);
        if (f === undefined || labelKey === undefined) {
          throw badInput(file, `entry ${i} needs a file (${FILE_KEYS.join('/')}) and a label (${LABEL_KEYS.join('/')})`);
        }
        return { file: f, label: asLabel(rec[labelKey], file, `entry ${i}`) };
      }),
    };
  }
  if (typeof doc === 'object' && doc !== null) {
    const entries = Object.entries(doc as Record<string, unknown>);
    if (entries.length > 0 && entries.every(([k]) => IMAGE_EXTENSIONS.test(k))) {
      return { type: 'files', items: entries.map(([k, v]) => ({ file: k, label: asLabel(v, file, k) })) };
    }
    if (entries.every(([, v]) => typeof v === 'number' && Number.isInteger(v) && v >= 0)) {
      const names: string[] = [];
      for (const [k, v] of entries) {
        if (names[v as number] !== undefined) throw badInput(file, `classes ${names[v as number]} and ${k} share index ${v}`);
        names[v as number] = k;
      }
      if (names.some((x) => x === undefined) || names.length !== entries.length) throw badInput(file, 'class indices must run 0…N-1 without gaps');
      return { type: 'classes', names };
    }
  }
  throw badInput(file, 'is neither a list of {file, label} entries, a {file: label} map, nor a list or map of class names');
}

export async function readClassesTxt(file: string): Promise<string[]> {
  const names = (await readFile(file, 'utf8')).split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '');
  if (names.length === 0) throw badInput(file, 'lists no class names');
  if (new Set(names).size !== names.length) throw badInput(file, 'lists a class name twice');
  return names;
}
