/**
 * Folders of JPEG/PNG photos, decoded one at a time. How a folder DIR gets its labels, first match:
 * 1. DIR/labels.json listing files → those files, in its order, with its labels.
 * 2. DIR/../labels.json listing files, some of them inside DIR → those files only. This is how
 *    `imagenet-100/jpeg` finds `imagenet-100/labels.json` ("jpeg/n01440764_tench.JPEG" → label 0)
 *    without the JPEG folder having to carry a copy.
 * 3. Class subfolders DIR/<class>/*.jpg (torchvision's ImageFolder): classes sorted by name, or in
 *    the order of DIR/classes.txt or a class-name labels.json.
 * 4. Images directly in DIR with no labels: predictions only (agreement with a reference model).
 * Passing a labels.json itself reads the files it lists.
 */
import { readdir, stat } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { badInput } from '../../../api/errors.ts';
import type { Dataset, DatasetOptions, ModelInputSpec } from './types.ts';
import { IMAGE_EXTENSIONS, readImage } from './image-decode.ts';
import { readClassesTxt, readLabelsJson, type LabelsJson } from './labels-json.ts';
import { makeDataset } from './dataset.ts';
import type { SampleSource } from './sample.ts';

export interface ImageListing {
  entries: { file: string; label: number | null }[];
  hasLabels: boolean;
  classNames?: string[];
  warnings: string[];
}

const isFile = (p: string): Promise<boolean> => stat(p).then((s) => s.isFile(), () => false);

/** Names in a folder that are files (or folders), symbolic links followed: datasets are often linked in. */
async function entriesOf(dir: string, want: 'file' | 'dir'): Promise<string[]> {
  const out: string[] = [];
  for (const d of await readdir(dir, { withFileTypes: true })) {
    const s = d.isSymbolicLink() ? await stat(join(dir, d.name)).catch(() => null) : d;
    if (s && (want === 'file' ? s.isFile() : s.isDirectory())) out.push(d.name);
  }
  return out.sort();
}

async function imagesIn(dir: string): Promise<string[]> {
  return (await entriesOf(dir, 'file')).filter((n) => IMAGE_EXTENSIONS.test(n));
}

const subfolders = (dir: string): Promise<string[]> => entriesOf(dir, 'dir');

/** Files listed by a labels.json; with `within`, only those inside that folder (null if none are). */
export async function listFromLabelsJson(labelsFile: string, within?: string, parsed?: LabelsJson): Promise<ImageListing | null> {
  const doc = parsed ?? (await readLabelsJson(labelsFile));
  if (doc.type !== 'files') throw badInput(labelsFile, 'names classes, not files; pass the image folder with the class subfolders instead');
  const base = dirname(labelsFile);
  let items = doc.items.map((it) => ({ file: resolve(base, it.file), label: it.label }));
  if (within !== undefined) {
    items = items.filter((it) => it.file.startsWith(within + sep));
    if (items.length === 0) return null;
  }
  if (items.length === 0) throw badInput(labelsFile, 'lists no images');
  const classesTxt = join(base, 'classes.txt');
  let classNames = (await isFile(classesTxt)) ? await readClassesTxt(classesTxt) : undefined;
  const names = items.map((it) => it.label).filter((l): l is string => typeof l === 'string');
  if (names.length > 0 && !classNames) classNames = [...new Set(names)].sort();
  const entries = items.map((it) => {
    if (typeof it.label === 'number') return { file: it.file, label: it.label };
    const index = classNames!.indexOf(it.label);
    if (index < 0) throw badInput(labelsFile, `label "${it.label}" of ${relative(base, it.file)} is not in classes.txt`);
    return { file: it.file, label: index };
  });
  for (const e of entries) {
    if (!(await isFile(e.file))) throw badInput(labelsFile, `lists ${relative(base, e.file)}, which does not exist`);
  }
  // Images beside the listed ones that the list leaves out are skipped, but said so.
  const listed = new Set(entries.map((e) => e.file));
  let unlisted = 0;
  for (const dir of new Set(entries.map((e) => dirname(e.file)))) {
    unlisted += (await imagesIn(dir)).filter((f) => !listed.has(join(dir, f))).length;
  }
  const warnings = unlisted > 0 ? [`${unlisted} image(s) beside those listed in ${labelsFile} are not in it and were skipped`] : [];
  return { entries, hasLabels: true, ...(classNames ? { classNames } : {}), warnings };
}

async function parentListing(dir: string): Promise<ImageListing | null> {
  const parentLabels = join(dirname(dir), 'labels.json');
  if (dirname(dir) === dir || !(await isFile(parentLabels))) return null;
  // The parent's labels.json may be about something else entirely: only a file list counts.
  const doc = await readLabelsJson(parentLabels).catch(() => null);
  return doc?.type === 'files' ? listFromLabelsJson(parentLabels, dir, doc) : null;
}

export async function listImageFolder(dir: string): Promise<ImageListing> {
  const labelsHere = join(dir, 'labels.json');
  const here = (await isFile(labelsHere)) ? await readLabelsJson(labelsHere) : null;
  if (here?.type === 'files') return (await listFromLabelsJson(labelsHere, undefined, here))!;
  const fromParent = here ? null : await parentListing(dir);
  if (fromParent) return fromParent;

  const classesTxt = join(dir, 'classes.txt');
  const named = (await isFile(classesTxt)) ? await readClassesTxt(classesTxt) : here?.type === 'classes' ? here.names : undefined;
  const loose = await imagesIn(dir);
  const classDirs: { name: string; files: string[] }[] = [];
  for (const name of await subfolders(dir)) {
    const files = await imagesIn(join(dir, name));
    if (files.length > 0) classDirs.push({ name, files });
  }
  if (classDirs.length > 0) {
    if (loose.length > 0) {
      throw badInput(dir, `mixes class folders (${classDirs.map((c) => c.name).slice(0, 3).join(', ')}…) with ${loose.length} loose image(s); put every image in a class folder, or list them in a labels.json`);
    }
    const classNames = named ?? classDirs.map((c) => c.name);
    const entries: ImageListing['entries'] = [];
    for (const c of classDirs) {
      const label = classNames.indexOf(c.name);
      if (label < 0) throw badInput(dir, `class folder ${c.name} is not named in classes.txt / labels.json`);
    }
    classNames.forEach((name, label) => {
      const c = classDirs.find((d) => d.name === name);
      for (const f of c?.files ?? []) entries.push({ file: join(dir, name, f), label });
    });
    return { entries, hasLabels: true, classNames, warnings: [] };
  }
  if (loose.length > 0) {
    return { entries: loose.map((f) => ({ file: join(dir, f), label: null })), hasLabels: false, ...(named ? { classNames: named } : {}), warnings: [] };
  }
  throw badInput(dir, 'holds no images (.jpg, .jpeg, .png), neither directly nor in class subfolders');
}

export async function openImageListing(
  kind: 'image-folder' | 'image', path: string, listing: ImageListing, inputs: ModelInputSpec[], options: DatasetOptions,
): Promise<Dataset> {
  if (inputs.length !== 1) throw badInput(path, `images feed one input, but the model takes ${inputs.length} (${inputs.map((i) => i.name).join(', ')})`);
  const source: SampleSource = {
    total: listing.entries.length,
    async *read(start) {
      for (let i = start; i < listing.entries.length; i++) {
        const { file, label } = listing.entries[i]!;
        yield { inputs: [await readImage(file)], label, file };
      }
    },
  };
  const info = { kind, path, hasLabels: listing.hasLabels, warnings: listing.warnings, ...(listing.classNames ? { classNames: listing.classNames } : {}) };
  return makeDataset(info, source, inputs, options);
}
