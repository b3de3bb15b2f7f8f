import { resolve } from 'node:path';
import { openModel } from '../../../native-models/formats/index.ts';
import { writeOnnxFile } from '../../../native-models/formats/onnx/index.ts';
import { peakRssBytes } from '../../peak-rss.ts';

export interface ConvertOptions {
  input: string;
  output: string;
  externalData: boolean | 'auto';
  sizeThreshold?: number | undefined;
  location?: string | undefined;
}

export interface ConvertReport {
  input: string;
  output: string;
  bytes: number;
  externalDataPath: string | null;
  externalDataBytes: number;
  externalTensors: number;
  autoExternal: boolean;
  seconds: number;
  peakRssBytes: number;
}

/** Re-saves a model, moving tensors to or from external data. */
export function convertModel(opts: ConvertOptions): ConvertReport {
  const t0 = performance.now();
  const model = openModel(opts.input);
  const w = writeOnnxFile(model, opts.output, {
    externalData: opts.externalData,
    ...(opts.sizeThreshold !== undefined ? { sizeThreshold: opts.sizeThreshold } : {}),
    ...(opts.location !== undefined ? { location: opts.location } : {}),
  });
  return {
    input: resolve(opts.input),
    output: w.path,
    bytes: w.bytes,
    externalDataPath: w.externalDataPath,
    externalDataBytes: w.externalDataBytes,
    externalTensors: w.externalTensors,
    autoExternal: w.autoExternal,
    seconds: (performance.now() - t0) / 1000,
    peakRssBytes: peakRssBytes(),
  };
}
