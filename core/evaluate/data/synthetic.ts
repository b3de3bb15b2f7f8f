/**
 * `synthetic:N`: seeded random inputs for latency and agreement runs (always reported synthetic,
 * never labelled). Image inputs get random 8-bit pixels that then pass through the same preset as
 * real images, so a float model sees values in its usual range; other float inputs get standard
 * normal values; integer inputs get uniform values (0…99 for int32/int64, which are usually ids).
 * The preset applies as it would to real data. Free dims: batch = the batch size; image height/width = `size` (224); any other free dim = `size`
 * (1). Sample i depends only on (seed, i), not on batch size or offset.
 */
import { badInput } from '../../../api/errors.ts';
import type { Dataset, DatasetOptions, HostDType, ModelInputSpec } from './types.ts';
import { planInput, type InputPlan } from './input-plan.ts';
import { makeDataset } from './dataset.ts';
import type { Sample, SampleSource } from './sample.ts';
import { seededRandom } from '../../../native-models/ir/random.ts';

export const SYNTHETIC_SPEC = /^synthetic:(\d+)$/;


function mix(seed: number, index: number, input: number): number {
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35) ^ Math.imul(input + 1, 0x27d4eb2f);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  return (h ^ (h >>> 13)) >>> 0;
}

const INT_SPAN: Partial<Record<HostDType, [number, number]>> = {
  uint8: [0, 256], int8: [-128, 256], uint16: [0, 65536], int16: [-32768, 65536], int32: [0, 100], int64: [0, 100], bool: [0, 2],
};

function makeSample(plan: InputPlan, options: DatasetOptions, next: () => number): Sample {
  const { sampleDims, channelAxis, layout, spec } = plan;
  const isFloat = spec.dtype === 'float32' || spec.dtype === 'float16' || spec.dtype === 'float64';
  const c = channelAxis === null ? null : sampleDims[channelAxis] ?? 3;
  if (isFloat && channelAxis !== null && (c === 1 || c === 3)) {
    const [hAxis, wAxis] = layout === 'nchw' ? [1, 2] : [0, 1];
    const height = sampleDims[hAxis] ?? options.size ?? 224;
    const width = sampleDims[wAxis] ?? options.size ?? 224;
    const data = new Uint8Array(height * width * c);
    for (let i = 0; i < data.length; i++) data[i] = Math.floor(next() * 256);
    return { kind: 'image', width, height, channels: c, data, photo: false };
  }
  const dims = sampleDims.map((d) => d ?? options.size ?? 1);
  const data = new Float64Array(dims.reduce((a, b) => a * b, 1));
  if (isFloat) {
    for (let i = 0; i < data.length; i += 2) {
      // Box–Muller: two normals per two uniforms.
      const r = Math.sqrt(-2 * Math.log(1 - next()));
      const t = 2 * Math.PI * next();
      data[i] = r * Math.cos(t);
      if (i + 1 < data.length) data[i + 1] = r * Math.sin(t);
    }
  } else {
    const [lo, span] = INT_SPAN[spec.dtype]!;
    for (let i = 0; i < data.length; i++) data[i] = lo + Math.floor(next() * span);
  }
  return { kind: 'tensor', dtype: 'float64', dims, data };
}

export async function openSynthetic(spec: string, inputs: ModelInputSpec[], options: DatasetOptions): Promise<Dataset> {
  const m = SYNTHETIC_SPEC.exec(spec);
  const n = m ? Number(m[1]) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw badInput(spec, 'synthetic data is written synthetic:N with N ≥ 1');
  const seed = options.seed ?? 0;
  const plans = inputs.map((s) => planInput(s, options, inputs.length === 1));
  const source: SampleSource = {
    total: n,
    async *read(start) {
      for (let i = start; i < n; i++) {
        yield { inputs: plans.map((p, k) => makeSample(p, options, seededRandom(mix(seed, i, k)))), label: null, file: spec };
      }
    },
  };
  return makeDataset({ kind: 'synthetic', path: spec, hasLabels: false, synthetic: true }, source, inputs, options);
}
