/**
 * Pixel operations on 8-bit HWC images. The resize reproduces Pillow's BILINEAR resample (a
 * triangle filter widened by the scale factor when shrinking, two separable passes in 22-bit fixed
 * point, horizontal first, rounded to 8 bits in between) because the reference tensors and most
 * published accuracies were produced with Pillow/torchvision: a naive bilinear resize aliases when
 * shrinking and costs a point or two of top-1.
 */
import type { ImageFit } from './preprocess.ts';
import type { ImageSample } from './sample.ts';

const PRECISION_BITS = 22;
const ONE = 2 ** PRECISION_BITS;

interface Coefficients { bounds: Int32Array; kk: Int32Array; ksize: number }

function precompute(inSize: number, outSize: number): Coefficients {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = filterscale; // the bilinear (triangle) filter has support 1
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const xcount = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    let ww = 0;
    for (let x = 0; x < xcount; x++) {
      const d = Math.abs((x + xmin - center + 0.5) / filterscale);
      k[x] = d < 1 ? 1 - d : 0;
      ww += k[x]!;
    }
    for (let x = 0; x < xcount; x++) {
      const w = ww !== 0 ? k[x]! / ww : k[x]!;
      kk[xx * ksize + x] = Math.trunc(w < 0 ? -0.5 + w * ONE : 0.5 + w * ONE);
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xcount;
  }
  return { bounds, kk, ksize };
}

function clip8(ss: number): number {
  if (ss <= 0) return 0;
  const v = Math.floor(ss / ONE);
  return v > 255 ? 255 : v;
}

/** Pillow-compatible bilinear resize of an HWC image: horizontal pass, then vertical. */
export function resizeBilinear(img: ImageSample, width: number, height: number): ImageSample {
  const C = img.channels;
  let data = img.data;
  if (width !== img.width) {
    const inRow = img.width * C;
    const outRow = width * C;
    const out = new Uint8Array(img.height * outRow);
    const c = precompute(img.width, width);
    for (let y = 0; y < img.height; y++) {
      for (let x = 0; x < width; x++) {
        const xmin = c.bounds[x * 2]!;
        const count = c.bounds[x * 2 + 1]!;
        const kBase = x * c.ksize;
        for (let ch = 0; ch < C; ch++) {
          let ss = ONE / 2;
          let p = y * inRow + xmin * C + ch;
          for (let k = 0; k < count; k++, p += C) ss += data[p]! * c.kk[kBase + k]!;
          out[y * outRow + x * C + ch] = clip8(ss);
        }
      }
    }
    data = out;
  }
  if (height !== img.height) {
    const row = width * C;
    const out = new Uint8Array(height * row);
    const c = precompute(img.height, height);
    for (let y = 0; y < height; y++) {
      const ymin = c.bounds[y * 2]!;
      const count = c.bounds[y * 2 + 1]!;
      const kBase = y * c.ksize;
      for (let i = 0; i < row; i++) {
        let ss = ONE / 2;
        for (let k = 0; k < count; k++) ss += data[(ymin + k) * row + i]! * c.kk[kBase + k]!;
        out[y * row + i] = clip8(ss);
      }
    }
    data = out;
  }
  return { ...img, width, height, data };
}

export function crop(img: ImageSample, left: number, top: number, width: number, height: number): ImageSample {
  const C = img.channels;
  const out = new Uint8Array(width * height * C);
  for (let y = 0; y < height; y++) {
    const from = ((top + y) * img.width + left) * C;
    out.set(img.data.subarray(from, from + width * C), y * width * C);
  }
  return { ...img, width, height, data: out };
}

/**
 * The standard evaluation transform: scale so the short side is `crop × 256/224` (256 for 224, the
 * Resize(256) + CenterCrop(224) recipe), then cut the centre. The long side is rounded and the crop
 * offset floored: that reproduces the fixtures' imagenet-100/images.u8 exactly (the variants differ
 * by up to 18 grey levels on average on some photos) and is within a pixel of torchvision's sizes.
 */
export function resizeShortSideAndCentreCrop(img: ImageSample, outW: number, outH: number): ImageSample {
  const target = Math.floor((Math.max(outW, outH) * 256) / 224);
  const short = Math.min(img.width, img.height);
  const long = Math.max(img.width, img.height);
  const longTarget = Math.round((target * long) / short);
  const [w, h] = img.width <= img.height ? [target, longTarget] : [longTarget, target];
  const resized = w === img.width && h === img.height ? img : resizeBilinear(img, w, h);
  return crop(resized, Math.floor((w - outW) / 2), Math.floor((h - outH) / 2), outW, outH);
}

/** The largest centred square (offsets floored), then a resize to the output: no part of the square is lost. */
export function centreSquareAndResize(img: ImageSample, outW: number, outH: number): ImageSample {
  const side = Math.min(img.width, img.height);
  const square = side === img.width && side === img.height ? img : crop(img, Math.floor((img.width - side) / 2), Math.floor((img.height - side) / 2), side, side);
  return square.width === outW && square.height === outH ? square : resizeBilinear(square, outW, outH);
}

/** Brings a photo to the model's size the way a preset says (see preprocess.ts). */
export function fitImageTo(img: ImageSample, outW: number, outH: number, fit: ImageFit): ImageSample {
  switch (fit) {
    case 'resize-crop': return resizeShortSideAndCentreCrop(img, outW, outH);
    case 'centre-square': return centreSquareAndResize(img, outW, outH);
    case 'stretch': return resizeBilinear(img, outW, outH);
  }
}

/** ITU-R 601 luma in Pillow's fixed point (convert('L')): grey images stay exactly grey. */
export function toGrey(img: ImageSample): ImageSample {
  if (img.channels === 1) return img;
  const n = img.width * img.height;
  const out = new Uint8Array(n);
  const d = img.data;
  for (let i = 0; i < n; i++) out[i] = (d[i * 3]! * 19595 + d[i * 3 + 1]! * 38470 + d[i * 3 + 2]! * 7471 + 0x8000) >>> 16;
  return { ...img, channels: 1, data: out };
}

export function toRgb(img: ImageSample): ImageSample {
  if (img.channels === 3) return img;
  const n = img.width * img.height;
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) out[i * 3] = out[i * 3 + 1] = out[i * 3 + 2] = img.data[i]!;
  return { ...img, channels: 3, data: out };
}
