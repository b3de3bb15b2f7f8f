/**
 * openDataset: decides what a DATA path is from what it holds (magic bytes and folder structure;
 * names only where the format has no magic, like .pb test data and idx pairs) and opens it.
 *
 * Folders are tried in this order, first match wins:
 *   1. ONNX test data (input_N.pb, or test_data_set_N folders)
 *   2. a raw tensor + sidecar pair (exactly one; two or more is ambiguous)
 *   3. MNIST idx images (exactly one *-idx3-ubyte[.gz])
 *   4. one .npz, or one .npy besides labels.npy / y.npy
 *   5. images (see image-folder.ts for how labels are found)
 * A prepared tensor beats the photos it was made from: `imagenet-100/` (images.u8 + images.json
 * beside jpeg/ and labels.json) opens the raw tensor; `imagenet-100/jpeg` or
 * `imagenet-100/labels.json` opens the JPEGs with labels from `imagenet-100/labels.json`.
 */
import { open as openFile, readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { badInput, WhittleError } from '../../../api/errors.ts';
import { PRESET_NAMES, type Dataset, type DatasetOptions, type ModelInputSpec } from './types.ts';
import { imageKind } from './image-decode.ts';
import { listFromLabelsJson, listImageFolder, openImageListing } from './image-folder.ts';
import { readLabelsJson } from './labels-json.ts';
import { IDX_IMAGES, openMnistIdx } from './idx.ts';
import { isNpyMagic } from './npy-format.ts';
import { LABEL_NPY_NAMES, openNpy } from './npy.ts';
import { openNpz } from './npz.ts';
import { hasTestSets, openOnnxTestData } from './onnx-test-data.ts';
import { findSidecarFor, looksLikeSidecar, openRawTensor, sidecarPairsIn } from './raw-tensor.ts';
import { openSynthetic, SYNTHETIC_SPEC } from './synthetic.ts';

const KNOWN = '.npy, .npz, MNIST idx files, an image folder or file, ONNX test data (input_N.pb), a raw tensor with a JSON sidecar, or synthetic:N';

function checkOptions(options: DatasetOptions): void {
  const wholeAtLeast = (name: string, v: number | undefined, min: number): void => {
    if (v !== undefined && (!Number.isSafeInteger(v) || v < min)) throw new WhittleError('BAD_USAGE', `--${name} must be a whole number ≥ ${min}, got ${v}`);
  };
  if (options.preprocess !== undefined && !PRESET_NAMES.includes(options.preprocess)) {
    throw new WhittleError('BAD_USAGE', `unknown --preprocess ${String(options.preprocess)}; choose one of ${PRESET_NAMES.join(', ')}`);
  }
  if (options.layout !== undefined && options.layout !== 'nchw' && options.layout !== 'nhwc') {
    throw new WhittleError('BAD_USAGE', `--layout must be nchw or nhwc, got ${String(options.layout)}`);
  }
  wholeAtLeast('size', options.size, 1);
  wholeAtLeast('limit', options.limit, 1);
  wholeAtLeast('offset', options.offset, 0);
  if (options.seed !== undefined && !Number.isFinite(options.seed)) throw new WhittleError('BAD_USAGE', `--seed must be a number, got ${options.seed}`);
}

async function head(file: string, n: number): Promise<Uint8Array> {
  const handle = await openFile(file, 'r');
  try {
    const buf = new Uint8Array(n);
    const { bytesRead } = await handle.read(buf, 0, n, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

function isJsonStart(bytes: Uint8Array): boolean {
  const text = new TextDecoder().decode(bytes).replace(/^\uFEFF/, '').trimStart();
  return text.startsWith('{') || text.startsWith('[');
}

async function openFileSpec(path: string, inputs: ModelInputSpec[], options: DatasetOptions): Promise<Dataset> {
  const bytes = await head(path, 64);
  const name = basename(path);
  if (isNpyMagic(bytes)) return openNpy(path, inputs, options);
  if (bytes[0] === 0x50 && bytes[1] === 0x4b && (bytes[2] === 3 || bytes[2] === 5)) return openNpz(path, inputs, options);
  if (IDX_IMAGES.test(name)) return openMnistIdx(path, inputs, options);
  if (/idx1-ubyte(\.gz)?$/i.test(name)) throw badInput(path, 'is an idx labels file; pass the images file (*-idx3-ubyte) or the folder holding both');
  if (bytes[0] === 0 && bytes[1] === 0 && bytes[2] === 8 && bytes[3] === 3) return openMnistIdx(path, inputs, options);
  if (imageKind(bytes)) {
    const listing = { entries: [{ file: path, label: null }], hasLabels: false, warnings: [] };
    return openImageListing('image', path, listing, inputs, options);
  }
  if (/^(input|output)_\d+\.pb$/.test(name)) return openOnnxTestData(dirname(path), inputs, options);
  if (isJsonStart(bytes)) {
    let doc: unknown = null;
    try { doc = JSON.parse(await readFile(path, 'utf8')); } catch { /* reported below by the labels reader */ }
    if (looksLikeSidecar(doc)) return openRawTensor(path, inputs, options);
    const parsed = await readLabelsJson(path);
    const listing = await listFromLabelsJson(path, undefined, parsed);
    return openImageListing('image-folder', path, listing!, inputs, options);
  }
  const sidecar = await findSidecarFor(path);
  if (sidecar) return openRawTensor(sidecar, inputs, options);
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) throw badInput(path, 'is a gzip file that is not MNIST idx data (*-idx3-ubyte.gz)');
  throw badInput(path, `unknown data format; expected ${KNOWN}`);
}

async function openFolder(dir: string, inputs: ModelInputSpec[], options: DatasetOptions): Promise<Dataset> {
  if (await hasTestSets(dir)) return openOnnxTestData(dir, inputs, options);
  const pairs = await sidecarPairsIn(dir);
  if (pairs.length > 1) throw badInput(dir, `holds ${pairs.length} raw tensors with sidecars (${pairs.map((p) => basename(p.sidecar)).join(', ')}); pass one sidecar`);
  if (pairs.length === 1) return openRawTensor(pairs[0]!.sidecar, inputs, options);
  const names = (await readdir(dir)).sort();
  const idx = names.filter((n) => IDX_IMAGES.test(n));
  if (idx.length > 1) throw badInput(dir, `holds ${idx.length} idx image files (${idx.join(', ')}); pass one of them`);
  if (idx.length === 1) return openMnistIdx(join(dir, idx[0]!), inputs, options);
  const npz = names.filter((n) => n.toLowerCase().endsWith('.npz'));
  const npy = names.filter((n) => n.toLowerCase().endsWith('.npy') && !LABEL_NPY_NAMES.includes(n));
  if (npz.length + npy.length > 1) throw badInput(dir, `holds several arrays (${[...npz, ...npy].join(', ')}); pass one of them`);
  if (npz.length === 1) return openNpz(join(dir, npz[0]!), inputs, options);
  if (npy.length === 1) return openNpy(join(dir, npy[0]!), inputs, options);
  const listing = await listImageFolder(dir).catch((e: unknown) => {
    if (e instanceof WhittleError && /holds no images/.test(e.message)) throw badInput(dir, `holds no recognised data; expected ${KNOWN}`);
    throw e;
  });
  return openImageListing('image-folder', dir, listing, inputs, options);
}

/** Opens DATA (SPEC §4) for a model with these inputs. Bad or inconsistent data fails with BAD_INPUT naming the file. */
export async function openDataset(spec: string, inputs: ModelInputSpec[], options: DatasetOptions = {}): Promise<Dataset> {
  checkOptions(options);
  if (inputs.length === 0) throw new WhittleError('BAD_USAGE', 'the model declares no inputs to feed');
  if (SYNTHETIC_SPEC.test(spec) || spec.startsWith('synthetic:')) return openSynthetic(spec, inputs, options);
  const path = resolve(spec);
  const st = await stat(path).catch(() => null);
  if (!st) throw badInput(path, 'does not exist');
  if (st.isDirectory()) return openFolder(path, inputs, options);
  if (st.isFile()) return openFileSpec(path, inputs, options);
  throw badInput(path, 'is neither a file nor a folder');
}
