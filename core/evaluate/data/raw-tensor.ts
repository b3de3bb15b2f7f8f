/**
 * A raw tensor file with a JSON sidecar that says what it holds (the fixtures' imagenet-100
 * images.u8 + images.json):
 *   {"file": "images.u8", "dtype": "uint8", "shape": [100,224,224,3], "layout": "nhwc",
 *    "color": "rgb", "labels": [0, 10, ...]}
 * Optional: `offset` (bytes before the data), `byteOrder` ("little"|"big"), `labels` as an array or
 * a labels .npy file name, `classNames`. Without `file`, the data is the other file with the
 * sidecar's stem. uint8 tensors with an image layout are images (RGB, or BGR/grey per `color`);
 * anything else is fed as an array. Samples are read from the file at their offsets.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { z } from 'zod';
import { badInput } from '../../../api/errors.ts';
import type { Dataset, DatasetOptions, ModelInputSpec } from './types.ts';
import { fileReader } from './byte-reader.ts';
import { ELEM_BYTES, elemsFromBytes, type ElemType } from './dtypes.ts';
import { readLabelsNpy } from './npy.ts';
import { makeDataset } from './dataset.ts';
import type { ImageSample, Sample, SampleSource } from './sample.ts';

const ELEM_TYPES = Object.keys(ELEM_BYTES) as [ElemType, ...ElemType[]];

const SidecarSchema = z.looseObject({
  file: z.string().min(1).optional(),
  dtype: z.enum(ELEM_TYPES),
  shape: z.array(z.number().int().nonnegative()).min(1),
  layout: z.string().optional(),
  color: z.enum(['rgb', 'bgr', 'gray', 'grey', 'l', 'RGB', 'BGR', 'L']).optional(),
  labels: z.union([z.array(z.number().int().nonnegative()), z.string()]).optional(),
  classNames: z.array(z.string()).optional(),
  offset: z.number().int().nonnegative().optional(),
  byteOrder: z.enum(['little', 'big']).optional(),
});
type Sidecar = z.infer<typeof SidecarSchema>;

const isFile = (p: string): Promise<boolean> => stat(p).then((s) => s.isFile(), () => false);

/** Looks like a sidecar (an object with dtype and shape), whether or not it is a valid one. */
export function looksLikeSidecar(doc: unknown): boolean {
  return typeof doc === 'object' && doc !== null && !Array.isArray(doc) && 'dtype' in doc && 'shape' in doc;
}

async function readJson(file: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw badInput(file, `is not valid JSON (${(e as Error).message})`);
  }
}

/** The data file a sidecar describes: its `file`, else the one other file with the same stem. */
async function dataFileOf(sidecarPath: string, doc: unknown): Promise<string | null> {
  const dir = dirname(sidecarPath);
  const named = (doc as { file?: unknown }).file;
  if (typeof named === 'string') return resolve(dir, named);
  const stem = basename(sidecarPath, extname(sidecarPath));
  const same = (await readdir(dir)).filter((f) => f !== basename(sidecarPath) && basename(f, extname(f)) === stem);
  return same.length === 1 ? join(dir, same[0]!) : null;
}

/** Sidecar/data pairs in a folder (small .json files that look like sidecars and whose data exists). */
export async function sidecarPairsIn(dir: string): Promise<{ sidecar: string; data: string }[]> {
  const pairs: { sidecar: string; data: string }[] = [];
  for (const name of (await readdir(dir)).filter((f) => f.toLowerCase().endsWith('.json')).sort()) {
    const p = join(dir, name);
    const s = await stat(p);
    if (!s.isFile() || s.size > 1 << 20) continue;
    const doc = await readJson(p).catch(() => null);
    if (!looksLikeSidecar(doc)) continue;
    const data = await dataFileOf(p, doc);
    if (data && (await isFile(data))) pairs.push({ sidecar: p, data });
  }
  return pairs;
}

/** The sidecar describing a data file: same stem first, else any sidecar whose `file` names it. */
export async function findSidecarFor(dataFile: string): Promise<string | null> {
  const pairs = await sidecarPairsIn(dirname(dataFile));
  const mine = pairs.filter((p) => p.data === resolve(dataFile));
  return mine[0]?.sidecar ?? null;
}

async function parseSidecar(path: string): Promise<Sidecar> {
  const result = SidecarSchema.safeParse(await readJson(path));
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw badInput(path, `sidecar field ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return result.data;
}

interface ImageGeometry { layout: 'nhwc' | 'nchw'; h: number; w: number; c: 1 | 3; bgr: boolean }

/** uint8 data with an image layout (stated or evident from a 1/3 channel axis) is read as images. */
function imageGeometry(sc: Sidecar, path: string): ImageGeometry | null {
  if (sc.dtype !== 'uint8') return null;
  const layout = sc.layout?.toLowerCase();
  const color = sc.color?.toLowerCase();
  const grey = color === 'gray' || color === 'grey' || color === 'l';
  const s = sc.shape;
  const check = (g: ImageGeometry): ImageGeometry => {
    if (grey && g.c !== 1) throw badInput(path, `color is ${sc.color} but the shape [${s.join(',')}] has ${g.c} channels`);
    return g;
  };
  if (s.length === 3 && (grey || layout === 'nhw')) return { layout: 'nhwc', h: s[1]!, w: s[2]!, c: 1, bgr: false };
  if (s.length !== 4) return null;
  const asNhwc = { layout: 'nhwc' as const, h: s[1]!, w: s[2]!, c: s[3]! as 1 | 3, bgr: color === 'bgr' };
  const asNchw = { layout: 'nchw' as const, h: s[2]!, w: s[3]!, c: s[1]! as 1 | 3, bgr: color === 'bgr' };
  const g = layout === 'nhwc' ? asNhwc : layout === 'nchw' ? asNchw
    : asNhwc.c === 1 || asNhwc.c === 3 ? asNhwc : asNchw.c === 1 || asNchw.c === 3 ? asNchw : null;
  if (g === null) return null;
  if (g.c !== 1 && g.c !== 3) throw badInput(path, `layout ${layout} of shape [${s.join(',')}] gives ${g.c} channels; images have 1 or 3`);
  return check(g);
}

/** Pixels of one image to HWC RGB (the form every image source hands the encoder). */
function toImage(bytes: Uint8Array, g: ImageGeometry): ImageSample {
  const { h, w, c } = g;
  const out = new Uint8Array(h * w * c);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let ch = 0; ch < c; ch++) {
        const from = g.layout === 'nhwc' ? (y * w + x) * c + ch : ch * h * w + y * w + x;
        out[(y * w + x) * c + (g.bgr ? c - 1 - ch : ch)] = bytes[from]!;
      }
    }
  }
  return { kind: 'image', width: w, height: h, channels: c, data: out, photo: false };
}

export async function openRawTensor(sidecarPath: string, inputs: ModelInputSpec[], options: DatasetOptions): Promise<Dataset> {
  const sc = await parseSidecar(sidecarPath);
  const dataFile = await dataFileOf(sidecarPath, sc);
  if (!dataFile || !(await isFile(dataFile))) {
    throw badInput(sidecarPath, sc.file ? `names data file ${sc.file}, which does not exist` : 'has no "file" field and no single data file shares its name');
  }
  if (inputs.length !== 1) throw badInput(dataFile, `a raw tensor feeds one input, but the model takes ${inputs.length}`);
  const n = sc.shape[0]!;
  const sampleElems = sc.shape.slice(1).reduce((a, b) => a * b, 1);
  const sampleBytes = sampleElems * ELEM_BYTES[sc.dtype];
  const offset = sc.offset ?? 0;
  const { size } = await stat(dataFile);
  if (size !== offset + n * sampleBytes) {
    throw badInput(sidecarPath, `shape [${sc.shape.join(',')}] of ${sc.dtype}${offset ? ` after ${offset} header bytes` : ''} needs ${offset + n * sampleBytes} bytes, but ${basename(dataFile)} holds ${size}`);
  }
  let labels: Int32Array | null = null;
  if (Array.isArray(sc.labels)) {
    if (sc.labels.length !== n) throw badInput(sidecarPath, `has ${sc.labels.length} labels for ${n} samples`);
    labels = Int32Array.from(sc.labels);
  } else if (typeof sc.labels === 'string') {
    labels = await readLabelsNpy(resolve(dirname(sidecarPath), sc.labels), n, dataFile);
  }
  const geometry = imageGeometry(sc, sidecarPath);
  const bigEndian = sc.byteOrder === 'big';
  const source: SampleSource = {
    total: n,
    async *read(start) {
      const reader = await fileReader(dataFile, offset + start * sampleBytes, (n - start) * sampleBytes);
      try {
        for (let i = start; i < n; i++) {
          const bytes = await reader.read(sampleBytes);
          const sample: Sample = geometry
            ? toImage(bytes, geometry)
            : { kind: 'tensor', dtype: sc.dtype, dims: sc.shape.slice(1), data: elemsFromBytes(sc.dtype, bytes, bigEndian) };
          yield { inputs: [sample], label: labels ? labels[i]! : null, file: dataFile };
        }
      } finally {
        await reader.close();
      }
    },
  };
  const info = { kind: 'raw-tensor' as const, path: dataFile, hasLabels: labels !== null, ...(sc.classNames ? { classNames: sc.classNames } : {}) };
  return makeDataset(info, source, inputs, options);
}
