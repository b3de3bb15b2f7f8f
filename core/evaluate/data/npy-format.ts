/**
 * The .npy header (numpy's format, versions 1–3): magic, version, a little-endian header length and
 * a Python dict literal with descr, fortran_order and shape. Shared by .npy files and .npz entries.
 */
import { badInput, WhittleError } from '../../../api/errors.ts';
import type { ByteReader } from './byte-reader.ts';
import type { ElemType } from './dtypes.ts';

export interface NpyHeader {
  dtype: ElemType;
  shape: number[];
  bigEndian: boolean;
  /** Bytes from the start of the array file to its first element. */
  dataOffset: number;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

const DESCR: Record<string, ElemType> = {
  f2: 'float16', f4: 'float32', f8: 'float64', u1: 'uint8', i1: 'int8', u2: 'uint16', i2: 'int16',
  i4: 'int32', i8: 'int64', u4: 'uint32', u8: 'uint64', b1: 'bool',
};

export function isNpyMagic(bytes: Uint8Array): boolean {
  return MAGIC.every((b, i) => bytes[i] === b);
}

/** Reads the header from the reader's current position; `file` names the array in errors. */
export async function readNpyHeader(reader: ByteReader, file: string): Promise<NpyHeader> {
  const pre = await reader.read(10);
  if (!isNpyMagic(pre)) throw badInput(file, 'not a .npy array (the \\x93NUMPY magic is missing)');
  const major = pre[6]!;
  let headerLen: number;
  let offset: number;
  if (major === 1) {
    headerLen = pre[8]! | (pre[9]! << 8);
    offset = 10;
  } else if (major === 2 || major === 3) {
    const more = await reader.read(2);
    headerLen = (pre[8]! | (pre[9]! << 8) | (more[0]! << 16)) + more[1]! * 2 ** 24;
    offset = 12;
  } else {
    throw badInput(file, `unknown .npy format version ${major}.${pre[7]}`);
  }
  if (headerLen > 1 << 20) throw badInput(file, `.npy header length ${headerLen} is not plausible`);
  const text = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(await reader.read(headerLen));
  return { ...parseHeaderDict(text, file), dataOffset: offset + headerLen };
}

function parseHeaderDict(text: string, file: string): Omit<NpyHeader, 'dataOffset'> {
  const descr = /'descr'\s*:\s*'([<>|=])([a-zA-Z])(\d+)'/.exec(text);
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(text);
  const shape = /'shape'\s*:\s*\(([^)]*)\)/.exec(text);
  if (!text.trimStart().startsWith('{') || !descr || !fortran || !shape) {
    if (/'descr'\s*:\s*\[/.test(text)) {
      throw new WhittleError('UNSUPPORTED', `${file}: structured .npy arrays are not supported; save one plain array per file`, { file });
    }
    throw badInput(file, `.npy header is not a numpy header dict: ${JSON.stringify(text.trim().slice(0, 80))}`);
  }
  const dtype = DESCR[`${descr[2]}${descr[3]}`];
  if (!dtype) throw new WhittleError('UNSUPPORTED', `${file}: .npy dtype '${descr[1]}${descr[2]}${descr[3]}' is not supported`, { file });
  const dims = shape[1]!.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (!dims.every((d) => /^\d+L?$/.test(d))) throw badInput(file, `.npy shape (${shape[1]}) is not a tuple of integers`);
  const dimsN = dims.map((d) => Number.parseInt(d, 10));
  if (fortran[1] === 'True' && dimsN.filter((d) => d > 1).length > 1) {
    // Samples of a Fortran-ordered array are strided through the whole file: no streaming read.
    throw new WhittleError('UNSUPPORTED', `${file}: Fortran-ordered arrays are not supported; save with np.ascontiguousarray`, { file });
  }
  return { dtype, shape: dimsN, bigEndian: descr[1] === '>' };
}
