import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { badInput, WhittleError } from '../../api/errors.ts';
import type { Model } from '../ir/model.ts';
import { readOnnxFile, type ReadOptions } from './onnx/index.ts';

export type ModelFormat = 'onnx' | 'tfjs';

/** Looks at a file's first bytes (not its extension) to tell which format it is. */
export function sniffFormat(path: string): ModelFormat {
  const file = resolve(path);
  let st;
  try {
    st = statSync(file);
  } catch {
    throw new WhittleError('NOT_FOUND', `${file}: no such file`, { file });
  }
  if (st.isDirectory()) throw badInput(file, 'is a directory; give the model file itself (model.onnx, or model.json for TF.js)');
  // a FIFO or device would block the first read forever
  if (!st.isFile()) throw badInput(file, 'is not a regular file (a pipe, socket or device)');
  const text = readHead(file).trimStart();
  if (text.startsWith('{') && /"(modelTopology|weightsManifest|format)"/.test(text)) return 'tfjs';
  return 'onnx';
}

/** The first 4 KiB of a file as text: enough to tell a TF.js model.json from a protobuf. */
function readHead(file: string): string {
  const buf = Buffer.alloc(4096);
  const fd = openSync(file, 'r');
  try {
    const n = readSync(fd, buf, 0, buf.length, 0);
    return buf.subarray(0, n).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** Opens any supported model file into the IR (`options` apply to ONNX files: see ReadOptions). */
export function openModel(path: string, options: ReadOptions = {}): Model {
  const format = sniffFormat(path);
  if (format === 'tfjs') {
    throw new WhittleError('UNSUPPORTED', `${resolve(path)}: is a TF.js model; this works on ONNX models only (TF.js models take inspect, quantize --method uint8|uint16|fp16, prune --method magnitude|nm and eval)`, { file: resolve(path) });
  }
  return readOnnxFile(path, options);
}
