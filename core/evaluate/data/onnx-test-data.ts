/**
 * ONNX test data as the model zoo and ONNX's backend tests ship it: a folder of `input_N.pb` (fed to
 * the model's inputs by position) and `output_N.pb` (the outputs it should produce). A folder of
 * `test_data_set_*` folders is read as several such sets. One set is one sample; its tensors keep
 * their stored shapes (they already include the batch axis) and are only converted to the model's
 * dtype, since test data is already preprocessed.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { badInput } from '../../../api/errors.ts';
import type { Batch, Dataset, DatasetOptions, HostDType, HostTensor, ModelInputSpec } from './types.ts';
import { allocHost, elemAsNumber, storeNumber } from './dtypes.ts';
import { checkBatchSize, sampleRange } from './dataset.ts';
import { decodeTensorProto, type DecodedTensor } from './tensor-proto.ts';

const INPUT_PB = /^input_(\d+)\.pb$/;
const OUTPUT_PB = /^output_(\d+)\.pb$/;

interface TestSet { dir: string; inputs: string[]; outputs: string[] }

/** `prefix_0.pb … prefix_{k-1}.pb`, checked to be numbered without gaps. */
function numbered(dir: string, names: string[], pattern: RegExp): string[] {
  const found = names.map((n) => pattern.exec(n)).filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ i: Number(m[1]), name: m[0] })).sort((a, b) => a.i - b.i);
  found.forEach((f, k) => {
    if (f.i !== k) throw badInput(dir, `has ${f.name} but no ${pattern === INPUT_PB ? 'input' : 'output'}_${k}.pb`);
  });
  return found.map((f) => join(dir, f.name));
}

async function testSets(dir: string): Promise<TestSet[]> {
  const names = await readdir(dir);
  if (names.some((n) => INPUT_PB.test(n))) {
    return [{ dir, inputs: numbered(dir, names, INPUT_PB), outputs: numbered(dir, names, OUTPUT_PB) }];
  }
  const setDirs = names.filter((n) => /^test_data_set_\d+$/.test(n))
    .sort((a, b) => Number(a.slice(14)) - Number(b.slice(14)));
  const sets: TestSet[] = [];
  for (const s of setDirs) {
    const d = join(dir, s);
    if (!(await stat(d)).isDirectory()) continue;
    const inner = await readdir(d);
    sets.push({ dir: d, inputs: numbered(d, inner, INPUT_PB), outputs: numbered(d, inner, OUTPUT_PB) });
  }
  return sets;
}

/** Looks like test data (input_N.pb here, or test_data_set_N folders); checked in full when opened. */
export async function hasTestSets(dir: string): Promise<boolean> {
  return (await readdir(dir)).some((n) => INPUT_PB.test(n) || /^test_data_set_\d+$/.test(n));
}

async function readTensor(file: string): Promise<DecodedTensor> {
  return decodeTensorProto(await readFile(file), file);
}

/** Converts a decoded tensor to a host dtype (values rounded and clamped for integer targets). */
function toHost(t: DecodedTensor, dtype: HostDType): HostTensor {
  if (t.dtype === dtype) return { dtype, dims: t.dims, data: t.data } as HostTensor;
  const out = allocHost(dtype, t.data.length);
  const exact = dtype === 'int64' && (t.data instanceof BigInt64Array || t.data instanceof BigUint64Array);
  for (let i = 0; i < t.data.length; i++) {
    if (exact) (out as BigInt64Array)[i] = BigInt.asIntN(64, t.data[i] as bigint);
    else storeNumber(dtype, out, i, elemAsNumber(t.dtype, t.data, i));
  }
  return { dtype, dims: t.dims, data: out } as HostTensor;
}

/** Output files keep their own dtype; uint32/uint64 (not host dtypes) widen to int64. */
function outputToHost(t: DecodedTensor): HostTensor {
  return toHost(t, t.dtype === 'uint32' || t.dtype === 'uint64' ? 'int64' : t.dtype);
}

function checkInput(t: DecodedTensor, spec: ModelInputSpec, file: string): void {
  const rankOk = t.dims.length === spec.shape.length;
  const dimsOk = rankOk && spec.shape.every((d, i) => typeof d !== 'number' || d <= 0 || d === t.dims[i]);
  if (!dimsOk) throw badInput(file, `tensor has shape [${t.dims.join(',')}] but model input ${spec.name} takes [${spec.shape.map((d) => d ?? '?').join(',')}]`);
}

export async function openOnnxTestData(dir: string, inputs: ModelInputSpec[], options: DatasetOptions): Promise<Dataset> {
  const sets = await testSets(dir);
  if (sets.length === 0) throw badInput(dir, 'holds neither input_N.pb files nor test_data_set_N folders');
  const warnings: string[] = [];
  if (options.preprocess && options.preprocess !== 'none') warnings.push(`test data is fed as stored: --preprocess ${options.preprocess} was not applied`);
  for (const s of sets) {
    if (s.inputs.length !== inputs.length) {
      throw badInput(s.dir, `holds ${s.inputs.length} input_N.pb file(s) but the model takes ${inputs.length} input(s) (${inputs.map((i) => i.name).join(', ')})`);
    }
  }
  const { start, end } = sampleRange(sets.length, options, dir);

  async function loadSet(s: TestSet): Promise<{ inputs: HostTensor[]; outputs: HostTensor[] }> {
    const decoded = await Promise.all(s.inputs.map(readTensor));
    const hostInputs = decoded.map((t, k) => {
      checkInput(t, inputs[k]!, s.inputs[k]!);
      if (t.dtype !== inputs[k]!.dtype) {
        const w = `${basename(s.inputs[k]!)} is ${t.dtype}, converted to ${inputs[k]!.dtype} for input ${inputs[k]!.name}`;
        if (!warnings.includes(w)) warnings.push(w);
      }
      return toHost(t, inputs[k]!.dtype);
    });
    const outputs = (await Promise.all(s.outputs.map(readTensor))).map(outputToHost);
    return { inputs: hostInputs, outputs };
  }

  // Read the first selected set now: bad files and shape mismatches surface at open time.
  const first = end > start ? await loadSet(sets[start]!) : null;
  return {
    kind: 'onnx-test-data',
    path: dir,
    n: end - start,
    synthetic: false,
    hasLabels: false,
    ...(first && end - start === 1 ? { expectedOutputs: first.outputs } : {}),
    warnings,
    async *batches(batchSize: number): AsyncGenerator<Batch> {
      checkBatchSize(batchSize);
      for (let i = start; i < end; i++) {
        const set = i === start && first ? first : await loadSet(sets[i]!);
        const named: Batch['inputs'] = {};
        inputs.forEach((spec, k) => { named[spec.name] = set.inputs[k]!; });
        yield { inputs: named, labels: null, count: 1, index: i, expectedOutputs: set.outputs };
      }
    },
  };
}
