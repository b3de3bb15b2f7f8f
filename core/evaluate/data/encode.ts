/**
 * Turns source samples into the batch tensor one model input takes: channel count, resize and
 * centre crop (images), layout (transposing HWC and CHW as needed), the preset, and the model's
 * dtype. One sample at a time is materialised, so memory follows the batch size only.
 */
import { badInput } from '../../../api/errors.ts';
import type { DatasetOptions, HostTensor } from './types.ts';
import { allocHost, elemAsNumber, storeNumber, type ElemArray, type ElemType } from './dtypes.ts';
import { fitImageTo, toGrey, toRgb } from './image-ops.ts';
import type { InputPlan } from './input-plan.ts';
import type { ImageSample, Sample, TensorSample } from './sample.ts';

/** A sample fitted to the model: output dims and, per output axis, the stride into the source. */
interface Fitted {
  dims: number[];
  strides: number[];
  src: ElemArray;
  srcType: ElemType;
}

const product = (a: number[]): number => a.reduce((x, y) => x * y, 1);
const shapeText = (a: (number | null)[]): string => `[${a.map((d) => d ?? '?').join(',')}]`;

function rowMajorStrides(dims: number[]): number[] {
  const s = new Array<number>(dims.length).fill(1);
  for (let i = dims.length - 2; i >= 0; i--) s[i] = s[i + 1]! * dims[i + 1]!;
  return s;
}

function compatible(want: (number | null)[], have: number[]): boolean {
  return want.length === have.length && want.every((d, i) => d === null || d === have[i]);
}

/** Fills free dims from an element count: possible when at most one dim is free. */
function fitByCount(want: (number | null)[], count: number): number[] | null {
  const fixed = product(want.filter((d): d is number => d !== null));
  const free = want.filter((d) => d === null).length;
  if (free === 0) return fixed === count ? (want as number[]) : null;
  if (free === 1 && fixed > 0 && count % fixed === 0) return want.map((d) => d ?? count / fixed);
  return null;
}

export class InputEncoder {
  constructor(readonly plan: InputPlan, readonly options: DatasetOptions) {}

  encode(samples: Sample[], files: string[]): HostTensor {
    const { spec } = this.plan;
    let dims: number[] | null = null;
    let out: HostTensor['data'] | null = null;
    let size = 0;
    samples.forEach((sample, i) => {
      const fitted = this.fit(sample, files[i]!);
      if (dims === null) {
        dims = fitted.dims;
        size = product(dims);
        out = allocHost(spec.dtype, size * samples.length);
      } else if (fitted.dims.join() !== dims.join()) {
        throw badInput(files[i]!, `sample has shape ${shapeText(fitted.dims)} for input ${spec.name}, earlier samples in the batch have ${shapeText(dims)}; use batch size 1 or make the samples the same size`);
      }
      this.write(fitted, out!, i * size);
    });
    // allocHost(spec.dtype) made `out`, so dtype and data agree
    return { dtype: spec.dtype, dims: [samples.length, ...(dims ?? [])], data: out ?? allocHost(spec.dtype, 0) } as HostTensor;
  }

  private fit(sample: Sample, file: string): Fitted {
    const fitted = sample.kind === 'image' ? this.fitImage(sample, file) : this.fitTensor(sample, file);
    const { preset, channelAxis, spec } = this.plan;
    if (preset.needsRgb && channelAxis !== null && fitted.dims[channelAxis] !== 3) {
      throw badInput(file, `--preprocess ${preset.name} needs 3 colour channels, but samples for input ${spec.name} have shape ${shapeText(fitted.dims)}`);
    }
    return fitted;
  }

  private fitImage(sample: ImageSample, file: string): Fitted {
    const { sampleDims, channelAxis, layout, preset, spec } = this.plan;
    if (channelAxis === null) {
      // Not a 4-D input: flatten HWC pixels into it (an MLP on MNIST), converting colour if that fits.
      const candidates = [sample, sample.channels === 3 ? toGrey(sample) : toRgb(sample)];
      for (const img of candidates) {
        const dims = fitByCount(sampleDims, img.data.length);
        if (dims) return { dims, strides: rowMajorStrides(dims), src: img.data, srcType: 'uint8' };
      }
      throw badInput(file, `a ${sample.width}×${sample.height} image does not fit model input ${spec.name} ${shapeText([null, ...sampleDims])}`);
    }
    const [hAxis, wAxis] = layout === 'nchw' ? [1, 2] : [0, 1];
    const c = sampleDims[channelAxis] ?? (preset.needsRgb ? 3 : sample.channels);
    if (c !== 1 && c !== 3) {
      throw badInput(file, `model input ${spec.name} ${shapeText([null, ...sampleDims])} takes ${c} channels (layout ${layout}); images give 1 or 3 — try --layout`);
    }
    let img = c === 1 ? toGrey(sample) : toRgb(sample);
    const fallbackH = this.options.size ?? (img.photo ? 224 : img.height);
    const fallbackW = this.options.size ?? (img.photo ? 224 : img.width);
    const h = sampleDims[hAxis] ?? fallbackH;
    const w = sampleDims[wAxis] ?? fallbackW;
    if (img.width !== w || img.height !== h) img = fitImageTo(img, w, h, preset.imageFit);
    return layout === 'nchw'
      ? { dims: [c, h, w], strides: [1, w * c, c], src: img.data, srcType: 'uint8' }
      : { dims: [h, w, c], strides: [w * c, c, 1], src: img.data, srcType: 'uint8' };
  }

  private fitTensor(sample: TensorSample, file: string): Fitted {
    const { sampleDims, layout, spec } = this.plan;
    const base = { src: sample.data, srcType: sample.dtype };
    const s = sample.dims;
    if (compatible(sampleDims, s)) return { ...base, dims: s, strides: rowMajorStrides(s) };
    if (layout !== null && s.length === 3) {
      // Arrays stored in the other image layout are transposed rather than reshaped into nonsense.
      const [a, b, c] = s as [number, number, number];
      if (layout === 'nchw' && compatible(sampleDims, [c, a, b])) return { ...base, dims: [c, a, b], strides: [1, b * c, c] };
      if (layout === 'nhwc' && compatible(sampleDims, [b, c, a])) return { ...base, dims: [b, c, a], strides: [c, 1, b * c] };
    }
    const dims = fitByCount(sampleDims, product(s));
    if (dims) return { ...base, dims, strides: rowMajorStrides(dims) };
    throw badInput(file, `samples have shape ${shapeText(s)} but model input ${spec.name} takes ${shapeText([null, ...sampleDims])}`);
  }

  private write(f: Fitted, out: HostTensor['data'], offset: number): void {
    const { preset, channelAxis, spec } = this.plan;
    const rank = f.dims.length;
    const size = product(f.dims);
    const idx = new Array<number>(rank).fill(0);
    const chAxis = channelAxis !== null && channelAxis < rank ? channelAxis : -1;
    const channels = chAxis >= 0 ? f.dims[chAxis]! : 1;
    const swap = preset.bgr; // sources are RGB: BGR output channel c reads source channel 2-c
    const plainSrc = f.srcType !== 'float16' && !(f.src instanceof BigInt64Array) && !(f.src instanceof BigUint64Array);
    const exactInt64 = spec.dtype === 'int64' && !plainSrc && f.srcType !== 'float16' && preset.name === 'none';
    const identity = preset.name === 'none';
    const direct = spec.dtype === 'float32' || spec.dtype === 'float64';
    const rowMajor = rowMajorStrides(f.dims);
    if (!exactInt64 && !(swap && chAxis >= 0) && f.strides.every((st, a) => st === rowMajor[a] || f.dims[a] === 1)) {
      // Stored in the model's order already (most arrays, NHWC images): one linear pass.
      const chStride = chAxis >= 0 ? rowMajor[chAxis]! : 1;
      for (let o = 0; o < size; o++) {
        const v = plainSrc ? (f.src[o] as number) : elemAsNumber(f.srcType, f.src, o);
        const y = identity ? v : preset.apply(v, chAxis >= 0 ? Math.floor(o / chStride) % channels : 0);
        if (direct) out[offset + o] = y;
        else storeNumber(spec.dtype, out, offset + o, y);
      }
      return;
    }
    for (let o = 0; o < size; o++) {
      let si = 0;
      for (let a = 0; a < rank; a++) {
        const i = a === chAxis && swap ? channels - 1 - idx[a]! : idx[a]!;
        si += i * f.strides[a]!;
      }
      if (exactInt64) {
        (out as BigInt64Array)[offset + o] = BigInt.asIntN(64, f.src[si] as bigint);
      } else {
        const v = plainSrc ? (f.src[si] as number) : elemAsNumber(f.srcType, f.src, si);
        const y = identity ? v : preset.apply(v, chAxis >= 0 ? idx[chAxis]! : 0);
        if (direct) out[offset + o] = y;
        else storeNumber(spec.dtype, out, offset + o, y);
      }
      for (let a = rank - 1; a >= 0; a--) {
        if (++idx[a]! < f.dims[a]!) break;
        idx[a] = 0;
      }
    }
  }
}
