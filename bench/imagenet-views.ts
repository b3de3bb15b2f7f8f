/**
 * More than one input per photo for label-free comparisons (top-1 agreement with fp32, SQNR): the
 * imagenet-100 JPEGs seen through the usual test-time views — short side resized to 256 or 320
 * (Pillow bilinear, as the fixture's images.u8), 224 × 224 cut at the centre and the four corners,
 * each also mirrored. 100 photos give 100 × N inputs, so an agreement figure resolves 1/(100·N)
 * instead of one photo = one point. Views of one photo are correlated, so intervals come from a
 * bootstrap over photos (`photoBootstrap`), not over views.
 *
 * The first view (256, centre, not mirrored) is the fixture's images.u8 (the JPEG decode is checked
 * to come within 1.5 grey levels of it, on average, on build).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readImage } from '../core/evaluate/data/image-decode.ts';
import { crop, resizeBilinear, toRgb } from '../core/evaluate/data/image-ops.ts';
import type { ImageSample } from '../core/evaluate/data/sample.ts';
import { openDataset, type HostTensor } from '../core/evaluate/data/index.ts';
import { inputSpecs } from '../core/evaluate/evaluate.ts';
import { argmax } from '../core/evaluate/metrics.ts';
import type { PresetName } from '../core/evaluate/data/types.ts';
import { readOnnxFile } from '../native-models/formats/onnx/index.ts';
import { createSession, runSession } from '../native-models/runtimes/onnxruntime.ts';

const SIDE = 224;
const SCALES = [256, 320] as const;
const POSITIONS = ['centre', 'top-left', 'top-right', 'bottom-left', 'bottom-right'] as const;
export const MAX_VIEWS = SCALES.length * POSITIONS.length * 2;

export interface ViewSet {
  /** The raw-tensor sidecar (SPEC §4) to give `openDataset`/`evaluate` as data. */
  sidecar: string;
  photos: number;
  viewsPerPhoto: number;
  /** Sample s is view s % viewsPerPhoto of photo ⌊s / viewsPerPhoto⌋. */
  describe(view: number): string;
}

interface ViewSpec { scale: number; position: (typeof POSITIONS)[number]; mirrored: boolean }

function viewSpecs(n: number): ViewSpec[] {
  const specs: ViewSpec[] = [];
  for (const scale of SCALES) for (const position of POSITIONS) for (const mirrored of [false, true]) specs.push({ scale, position, mirrored });
  return specs.slice(0, n);
}

/** Short side to `short` with the same rounding as resizeShortSideAndCentreCrop (images.u8). */
function resizeShortSide(img: ImageSample, short: number): ImageSample {
  const s = Math.min(img.width, img.height);
  const long = Math.round((short * Math.max(img.width, img.height)) / s);
  const [w, h] = img.width <= img.height ? [short, long] : [long, short];
  return resizeBilinear(img, w, h);
}

function cut(img: ImageSample, position: ViewSpec['position']): ImageSample {
  const right = img.width - SIDE;
  const bottom = img.height - SIDE;
  switch (position) {
    case 'centre': return crop(img, Math.floor(right / 2), Math.floor(bottom / 2), SIDE, SIDE);
    case 'top-left': return crop(img, 0, 0, SIDE, SIDE);
    case 'top-right': return crop(img, right, 0, SIDE, SIDE);
    case 'bottom-left': return crop(img, 0, bottom, SIDE, SIDE);
    case 'bottom-right': return crop(img, right, bottom, SIDE, SIDE);
  }
}

function mirror(img: ImageSample): Uint8Array {
  const out = new Uint8Array(img.data.length);
  const row = img.width * 3;
  for (let y = 0; y < img.height; y++) {
    for (let x = 0; x < img.width; x++) {
      const from = y * row + x * 3;
      const to = y * row + (img.width - 1 - x) * 3;
      out[to] = img.data[from]!; out[to + 1] = img.data[from + 1]!; out[to + 2] = img.data[from + 2]!;
    }
  }
  return out;
}

/** Writes views.u8 + views.json into `dir`: uint8 RGB NHWC [photos × views, 224, 224, 3], photo-major. */
export async function buildImagenetViews(imagenetDir: string, viewsPerPhoto: number, dir: string): Promise<ViewSet> {
  if (!Number.isInteger(viewsPerPhoto) || viewsPerPhoto < 1 || viewsPerPhoto > MAX_VIEWS) throw new Error(`--views must be 1–${MAX_VIEWS}`);
  const entries = JSON.parse(readFileSync(join(imagenetDir, 'labels.json'), 'utf8')) as { file: string; label: number }[];
  const specs = viewSpecs(viewsPerPhoto);
  const pixels = SIDE * SIDE * 3;
  const data = new Uint8Array(entries.length * specs.length * pixels);
  const reference = readFileSync(join(imagenetDir, 'images.u8'));
  const labels: number[] = [];
  for (const [p, entry] of entries.entries()) {
    const photo = toRgb(await readImage(join(imagenetDir, entry.file)));
    for (const scale of new Set(specs.map((s) => s.scale))) {
      const resized = resizeShortSide(photo, scale);
      for (const [v, spec] of specs.entries()) {
        if (spec.scale !== scale) continue;
        const view = cut(resized, spec.position);
        data.set(spec.mirrored ? mirror(view) : view.data, (p * specs.length + v) * pixels);
      }
    }
    for (let v = 0; v < specs.length; v++) labels.push(entry.label);
    // jpeg-js decodes within 1.5 grey levels (mean) of the libjpeg that made images.u8; the first view is the
    // fixture's own bytes, so the 100-photo figures are exactly the subset of the views' figures
    const first = data.subarray(p * specs.length * pixels, (p * specs.length + 1) * pixels);
    const fixtureView = reference.subarray(p * pixels, (p + 1) * pixels);
    let difference = 0;
    for (let i = 0; i < pixels; i++) difference += Math.abs(first[i]! - fixtureView[i]!);
    if (difference / pixels > 1.5) throw new Error(`${entry.file}: the centre view is ${(difference / pixels).toFixed(2)} grey levels from images.u8 on average — the resize no longer matches the fixture`);
    first.set(fixtureView);
  }
  writeFileSync(join(dir, 'views.u8'), data);
  const sidecar = join(dir, 'views.json');
  writeFileSync(sidecar, JSON.stringify({ file: 'views.u8', dtype: 'uint8', shape: [labels.length, SIDE, SIDE, 3], layout: 'nhwc', color: 'rgb', labels }));
  return {
    sidecar, photos: entries.length, viewsPerPhoto: specs.length,
    describe: (v) => { const s = specs[v]!; return `${s.scale}/${s.position}${s.mirrored ? '/mirrored' : ''}`; },
  };
}

/**
 * The 2.5th and 97.5th percentiles of a per-view statistic's mean when whole photos are drawn with
 * replacement (seeded, so the same inputs print the same interval).
 */
export function photoBootstrap(perView: ArrayLike<number>, viewsPerPhoto: number, draws = 2000, seed = 1): [number, number] {
  const photos = perView.length / viewsPerPhoto;
  const photoSums = new Float64Array(photos);
  for (let i = 0; i < perView.length; i++) photoSums[Math.floor(i / viewsPerPhoto)]! += perView[i]!;
  let state = seed >>> 0;
  const next = () => { state = (state + 0x6d2b79f5) >>> 0; let t = state; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
  const means = new Float64Array(draws);
  for (let d = 0; d < draws; d++) {
    let sum = 0;
    for (let p = 0; p < photos; p++) sum += photoSums[Math.floor(next() * photos)]!;
    means[d] = sum / perView.length;
  }
  means.sort();
  return [means[Math.floor(0.025 * draws)]!, means[Math.min(draws - 1, Math.ceil(0.975 * draws) - 1)]!];
}

/** The model's first output for every sample of `data`, flattened per sample, in data order (CPU, batch 1). */
export async function modelOutputs(model: string, data: string, preprocess: PresetName): Promise<Float32Array[]> {
  const dataset = await openDataset(data, inputSpecs(readOnnxFile(model, { lazyTensors: true })), { preprocess });
  const { session } = await createSession(model, { ep: 'cpu' });
  const rows: Float32Array[] = [];
  try {
    for await (const batch of dataset.batches(1)) {
      const out = await runSession(session, batch.inputs as Record<string, HostTensor>);
      rows.push(Float32Array.from(out[session.outputNames[0]!]!.data as Float32Array));
    }
  } finally {
    await session.release();
  }
  return rows;
}

/** The model's first output for every view, in view order. */
export function outputsOnViews(model: string, views: ViewSet, preprocess: PresetName): Promise<Float32Array[]> {
  return modelOutputs(model, views.sidecar, preprocess);
}

export interface ViewComparison {
  agreement: number;
  /** 95 % interval of the agreement, bootstrapped over photos. */
  interval: [number, number];
  /** Output SQNR over all views' values, as evaluate's Agreement computes it. */
  sqnrDb: number;
  /** Photos whose views do not all agree. */
  photosWithFlips: number;
  /**
   * RMS change, in logits, of fp32's lead of its best class over its second (the outputs are
   * SqueezeNet's probabilities, so log-probability differences are logit differences): the noise
   * that flips near-ties, comparable across data sets where agreement is not. Null when the model
   * outputs a probability of exactly 0 for either class on some view (an 8-bit Softmax output, as
   * onnxruntime's quantizer writes): its log is not a logit then.
   */
  marginNoise: number | null;
  /** Agreement of each view alone (index as `describe`). */
  byView: number[];
}

/** 1 where the candidate's top-1 class is the reference's, per view. */
export function agreementFlags(reference: Float32Array[], candidate: Float32Array[]): Float64Array {
  return Float64Array.from(reference, (r, s) => (argmax(r, 0, r.length) === argmax(candidate[s]!, 0, r.length) ? 1 : 0));
}

/** `agreed`: agreementFlags of the same outputs, when the caller has them already. */
export function compareOnViews(reference: Float32Array[], candidate: Float32Array[], views: ViewSet, agreed = agreementFlags(reference, candidate)): ViewComparison {
  let signal = 0, noise = 0, marginChange = 0, zeroProbability = false;
  const flipped = new Set<number>();
  for (let s = 0; s < reference.length; s++) {
    const r = reference[s]!, x = candidate[s]!;
    for (let i = 0; i < r.length; i++) { signal += r[i]! * r[i]!; noise += (r[i]! - x[i]!) ** 2; }
    const [best, second] = topTwo(r);
    if (!(x[best]! > 0 && x[second]! > 0)) zeroProbability = true;
    marginChange += (logOf(x[best]!) - logOf(x[second]!) - (logOf(r[best]!) - logOf(r[second]!))) ** 2;
    if (!agreed[s]) flipped.add(Math.floor(s / views.viewsPerPhoto));
  }
  return {
    agreement: agreed.reduce((a, b) => a + b, 0) / agreed.length,
    interval: photoBootstrap(agreed, views.viewsPerPhoto),
    sqnrDb: 10 * Math.log10(signal / noise),
    photosWithFlips: flipped.size,
    marginNoise: zeroProbability ? null : Math.sqrt(marginChange / reference.length),
    byView: Array.from({ length: views.viewsPerPhoto }, (_, v) => {
      let n = 0;
      for (let s = v; s < agreed.length; s += views.viewsPerPhoto) n += agreed[s]!;
      return n / views.photos;
    }),
  };
}

/** The best and second-best class of a score vector. */
export function topTwo(v: Float32Array): [number, number] {
  let a = 0, b = -1;
  for (let i = 1; i < v.length; i++) {
    if (v[i]! > v[a]!) { b = a; a = i; } else if (b < 0 || v[i]! > v[b]!) b = i;
  }
  return [a, b];
}

/** log of a probability, floored so that an exact 0 stays finite. */
export const logOf = (p: number) => Math.log(Math.max(p, 1e-30));
