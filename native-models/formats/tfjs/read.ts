import { readFileSync, statSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { badInput, WhittleError } from '../../../api/errors.ts';
import { BYTES_PER_ELEMENT, elementCountOf, parseModelJson, type ManifestEntry, type ModelJson } from './manifest.ts';
import { TfjsWeight } from './weight.ts';

export type TfjsKind = 'layers' | 'graph';

/** A TF.js model in memory: its model.json and every weight's stored bytes. */
export interface TfjsModel {
  /** Absolute path of model.json. */
  path: string;
  json: ModelJson;
  kind: TfjsKind;
  /** In manifest order: group by group, weight by weight. */
  weights: TfjsWeight[];
  /** model.json and the shards, as read, with their sizes. */
  files: { path: string; bytes: number }[];
  /** Things worth knowing that did not stop the read (bytes past the last weight of a group). */
  warnings: string[];
}

/** Layers or graph model: the `format` field when it says, else what the topology holds. */
export function modelKind(json: ModelJson, file: string): TfjsKind {
  if (json.format === 'layers-model') return 'layers';
  if (json.format === 'graph-model') return 'graph';
  const topology = json.modelTopology as Record<string, unknown>;
  if (Array.isArray(topology.node)) return 'graph';
  if (topology.model_config !== undefined || topology.class_name !== undefined) return 'layers';
  throw badInput(file, `is neither a TF.js layers model (Keras model_config) nor a graph model (GraphDef nodes)${json.format ? `; its format is ${JSON.stringify(json.format)}` : ''}`);
}

/** Bytes the entry occupies in its group's concatenated shards; strings are walked (4-byte little-endian lengths). */
function storedByteLength(entry: ManifestEntry, group: Uint8Array, offset: number, shardsLabel: string, file: string): number {
  const n = elementCountOf(entry.shape);
  if (entry.quantization) return n * BYTES_PER_ELEMENT[entry.quantization.dtype];
  if (entry.dtype !== 'string') return n * BYTES_PER_ELEMENT[entry.dtype];
  const view = new DataView(group.buffer, group.byteOffset, group.byteLength);
  let at = offset;
  for (let i = 0; i < n; i++) {
    if (at + 4 > group.byteLength) throw truncated(file, entry, shardsLabel, group.byteLength);
    at += 4 + view.getUint32(at, true);
  }
  return at - offset;
}

function truncated(file: string, entry: ManifestEntry, shardsLabel: string, have: number): WhittleError {
  return badInput(file, `weight "${entry.name}" runs past the end of its shards: ${shardsLabel} hold ${have} bytes, fewer than the weights manifest describes (truncated or wrong shard)`);
}

function readShard(dir: string, name: string, file: string): Buffer {
  const shard = resolve(dir, name);
  try {
    return readFileSync(shard);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new WhittleError('BAD_INPUT', `${shard}: weight shard listed in ${file} is missing`, { file: shard });
    if (code === 'EISDIR') throw badInput(shard, `is a folder, but ${file} lists it as a weight shard`);
    throw badInput(shard, `weight shard of ${file} cannot be read (${code ?? (err as Error).message})`);
  }
}

/** Reads model.json and its shards. Every weight's bytes are checked against the manifest here. */
export function readTfjsModel(path: string): TfjsModel {
  const file = resolve(path);
  let text: string;
  try {
    if (statSync(file).isDirectory()) throw badInput(file, 'is a folder; give the model.json file itself');
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof WhittleError) throw err;
    throw new WhittleError('NOT_FOUND', `${file}: no such file`, { file });
  }
  const json = parseModelJson(text, file);
  const kind = modelKind(json, file);
  const dir = dirname(file);
  const weights: TfjsWeight[] = [];
  const files = [{ path: file, bytes: Buffer.byteLength(text) }];
  const warnings: string[] = [];
  (json.weightsManifest ?? []).forEach((group, g) => {
    const shards = group.paths.map((p) => readShard(dir, p, file));
    group.paths.forEach((p, i) => files.push({ path: resolve(dir, p), bytes: shards[i]!.length }));
    const bytes = shards.length === 1 ? shards[0]! : Buffer.concat(shards);
    const shardsLabel = group.paths.length ? group.paths.map((p) => basename(p)).join(' + ') : `group ${g + 1} (no shard files)`;
    let offset = 0;
    for (const entry of group.weights) {
      const length = storedByteLength(entry, bytes, offset, shardsLabel, file);
      if (offset + length > bytes.length) throw truncated(file, entry, shardsLabel, bytes.length);
      weights.push(new TfjsWeight(entry, g, bytes.subarray(offset, offset + length)));
      offset += length;
    }
    if (offset < bytes.length) warnings.push(`${shardsLabel}: ${bytes.length - offset} bytes after the last weight of group ${g + 1} are not in the manifest and are not written back`);
  });
  return { path: file, json, kind, weights, files, warnings };
}

/** Bytes of every weight as stored (shards' payload, without model.json). */
export function weightBytes(model: TfjsModel): number {
  return model.weights.reduce((n, w) => n + w.bytes.length, 0);
}
