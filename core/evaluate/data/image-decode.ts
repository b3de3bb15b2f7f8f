/**
 * JPEG (jpeg-js) and PNG (pngjs) files to 8-bit RGB, recognised by their magic bytes rather than
 * their extension. Alpha is dropped, as Pillow's convert('RGB') does; grey images come out with
 * equal channels, which convert back to grey exactly when the model wants one channel.
 */
import { readFile } from 'node:fs/promises';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { badInput } from '../../../api/errors.ts';
import type { ImageSample } from './sample.ts';

export const IMAGE_EXTENSIONS = /\.(jpe?g|png)$/i;

export function imageKind(head: Uint8Array): 'jpeg' | 'png' | null {
  if (head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return 'jpeg';
  if (head[0] === 0x89 && head[1] === 0x50 && head[2] === 0x4e && head[3] === 0x47) return 'png';
  return null;
}

export function decodeImage(bytes: Uint8Array, file: string): ImageSample {
  const kind = imageKind(bytes);
  try {
    if (kind === 'jpeg') {
      const img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false, maxMemoryUsageInMB: 1024 });
      return { kind: 'image', width: img.width, height: img.height, channels: 3, data: img.data, photo: true };
    }
    if (kind === 'png') {
      const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length));
      const n = png.width * png.height;
      const rgb = new Uint8Array(n * 3);
      for (let i = 0; i < n; i++) {
        rgb[i * 3] = png.data[i * 4]!;
        rgb[i * 3 + 1] = png.data[i * 4 + 1]!;
        rgb[i * 3 + 2] = png.data[i * 4 + 2]!;
      }
      return { kind: 'image', width: png.width, height: png.height, channels: 3, data: rgb, photo: true };
    }
  } catch (e) {
    throw badInput(file, `cannot be decoded as ${kind === 'jpeg' ? 'JPEG' : 'PNG'} (${(e as Error).message})`);
  }
  throw badInput(file, 'is not a JPEG or PNG image (unrecognised first bytes)');
}

export async function readImage(file: string): Promise<ImageSample> {
  return decodeImage(await readFile(file), file);
}
