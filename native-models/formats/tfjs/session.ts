import type { GraphModel, io, LayersModel, NamedTensorMap, Rank, Tensor } from '@tensorflow/tfjs';
import { WhittleError } from '../../../api/errors.ts';
import type { HostTensor } from '../../runtimes/host-tensor.ts';
import type { TfModule } from '../../runtimes/tfjs.ts';
import type { TfjsKind, TfjsModel } from './read.ts';
import type { TensorInfo } from './topology.ts';

/**
 * A TF.js model loaded into TensorFlow.js from memory: our reader hands TF.js the topology, the
 * manifest entries and the stored bytes through an IOHandler, and TF.js dequantizes and builds the
 * model itself, exactly as it would from a URL. No file:// loader (that needs tfjs-node).
 */
export interface TfjsSession {
  kind: TfjsKind;
  /** As TF.js reports them: names to feed, dtypes, shapes with null for free dims. */
  inputs: TensorInfo[];
  outputs: string[];
  run(feeds: Record<string, HostTensor>): Promise<Record<string, HostTensor>>;
  /** Output shapes: declared ones for layers models, measured with one zero batch for graph models. */
  outputShapes(): Promise<(number | null)[][]>;
  dispose(): void;
}

/** What TF.js's own http/file loaders would produce from model.json and the shards. */
export function tfjsArtifacts(model: TfjsModel): io.ModelArtifacts {
  const data = Buffer.concat(model.weights.map((w) => w.bytes));
  const json = model.json;
  const optional = <K extends string>(key: K) => (json[key] !== undefined ? { [key]: json[key] } : {});
  return {
    modelTopology: json.modelTopology as object,
    format: json.format,
    generatedBy: json.generatedBy,
    convertedBy: json.convertedBy ?? null,
    ...optional('signature'),
    ...optional('userDefinedMetadata'),
    ...optional('modelInitializer'),
    ...optional('initializerSignature'),
    ...optional('trainingConfig'),
    weightSpecs: model.weights.map((w) => w.entry as io.WeightsManifestEntry),
    weightData: data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength),
  };
}

function toTfTensor(tf: TfModule, t: HostTensor, name: string): Tensor {
  switch (t.dtype) {
    case 'float32': return tf.tensor(t.data, t.dims, 'float32');
    case 'int32': return tf.tensor(t.data, t.dims, 'int32');
    case 'bool': return tf.tensor(t.data, t.dims, 'bool');
    case 'float64': case 'uint8': case 'int8': case 'uint16': case 'int16':
      return tf.tensor(Float32Array.from(t.data), t.dims, 'float32');
    default:
      throw new WhittleError('UNSUPPORTED', `input ${name} is ${t.dtype}, which TF.js models cannot be fed (float32, int32, bool)`);
  }
}

async function toHost(t: Tensor): Promise<HostTensor> {
  const data = await t.data();
  const dims = [...t.shape];
  if (data instanceof Float32Array) return { dtype: 'float32', dims, data };
  if (data instanceof Int32Array) return { dtype: 'int32', dims, data };
  if (data instanceof Uint8Array) return { dtype: 'bool', dims, data };
  throw new WhittleError('UNSUPPORTED', `a model output is ${t.dtype}, which evaluation cannot read`);
}

const freeDims = (shape: readonly (number | null | undefined)[] | undefined): (number | null)[] =>
  (shape ?? []).map((d) => (typeof d === 'number' && d >= 0 ? d : null));

export async function openTfjsSession(model: TfjsModel, tf: TfModule): Promise<TfjsSession> {
  const handler = { load: async () => tfjsArtifacts(model) };
  try {
    return model.kind === 'graph'
      ? graphSession(tf, await tf.loadGraphModel(handler))
      : layersSession(tf, await tf.loadLayersModel(handler));
  } catch (err) {
    if (err instanceof WhittleError) throw err;
    throw new WhittleError('RUNTIME', `${model.path}: TensorFlow.js could not load the model (${(err as Error).message.split('\n')[0]})`, { file: model.path, cause: err });
  }
}

function graphSession(tf: TfModule, gm: GraphModel): TfjsSession {
  const inputs = gm.inputs.map((i) => ({ name: i.name, dtype: i.dtype ?? 'float32', shape: freeDims(i.shape) }));
  const outputs = gm.outputNodes;
  // execute() is synchronous and faster; graphs with control flow need executeAsync()
  let dynamic = false;
  const execute = async (feed: NamedTensorMap): Promise<Tensor[]> => {
    if (!dynamic) {
      try {
        const out = gm.execute(feed, outputs);
        return Array.isArray(out) ? out : [out];
      } catch (err) {
        if (!/executeAsync/.test((err as Error).message)) throw err;
        dynamic = true;
      }
    }
    const out = await gm.executeAsync(feed, outputs);
    return Array.isArray(out) ? out : [out];
  };
  const run = async (feeds: Record<string, HostTensor>) => {
    const feed: NamedTensorMap = {};
    for (const i of inputs) {
      const t = feeds[i.name];
      if (!t) throw new WhittleError('BAD_INPUT', `the model needs input ${i.name}, which was not fed`);
      feed[i.name] = toTfTensor(tf, t, i.name);
    }
    try {
      const result = await execute(feed);
      const out: Record<string, HostTensor> = {};
      for (let k = 0; k < result.length; k++) out[outputs[k]!] = await toHost(result[k]!);
      tf.dispose(result);
      return out;
    } finally {
      tf.dispose(Object.values(feed));
    }
  };
  return {
    kind: 'graph',
    inputs,
    outputs,
    run,
    async outputShapes() {
      const known = gm.outputs.map((o) => (o.shape ? freeDims(o.shape) : null));
      if (known.every((s) => s !== null)) return known as (number | null)[][];
      // free input dims run as 1; an output dim is reported free when it follows a free batch dim
      const feeds: Record<string, HostTensor> = {};
      for (const i of inputs) {
        const dims = (i.shape ?? []).map((d) => d ?? 1);
        const n = dims.reduce((a, b) => a * b, 1);
        feeds[i.name] = i.dtype === 'int32' ? { dtype: 'int32', dims, data: new Int32Array(n) } : { dtype: 'float32', dims, data: new Float32Array(n) };
      }
      const batchFree = inputs.some((i) => i.shape?.[0] === null);
      const out = await run(feeds);
      return outputs.map((name, k) => known[k] ?? out[name]!.dims.map((d, axis) => (axis === 0 && batchFree ? null : d)));
    },
    dispose: () => gm.dispose(),
  };
}

function layersSession(tf: TfModule, lm: LayersModel): TfjsSession {
  const inputs = lm.inputs.map((i, k) => ({ name: lm.inputNames[k] ?? i.name, dtype: i.dtype, shape: freeDims(i.shape) }));
  const outputs = lm.outputNames;
  return {
    kind: 'layers',
    inputs,
    outputs,
    async run(feeds) {
      const xs = inputs.map((i) => {
        const t = feeds[i.name];
        if (!t) throw new WhittleError('BAD_INPUT', `the model needs input ${i.name}, which was not fed`);
        return toTfTensor(tf, t, i.name);
      });
      try {
        const y = lm.predict(xs.length === 1 ? xs[0]! : xs) as Tensor<Rank> | Tensor<Rank>[];
        const ys = Array.isArray(y) ? y : [y];
        const out: Record<string, HostTensor> = {};
        for (let k = 0; k < ys.length; k++) out[outputs[k]!] = await toHost(ys[k]!);
        tf.dispose(ys);
        return out;
      } finally {
        tf.dispose(xs);
      }
    },
    async outputShapes() {
      return lm.outputs.map((o) => freeDims(o.shape));
    },
    dispose: () => lm.dispose(),
  };
}
