import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { WhittleError } from '../../../api/errors.ts';
import { fixture } from '../../../core/testing/fixtures.ts';
import { floatToHalf } from '../../ir/dtypes.ts';
import { sniffFormat } from '../index.ts';
import { readTfjsModel, writeTfjsModel } from './index.ts';
import { readWeightsIndependently } from './testing.ts';

const work = mkdtempSync(join(tmpdir(), 'whittle-tfjs-format-'));
after(() => rmSync(work, { recursive: true, force: true }));
let dirs = 0;
const newDir = () => join(work, `m${dirs++}`);

const FIXTURES = [
  { name: 'nsfwjs layers model', dir: 'tfjs-nsfwjs-mobilenet-v2', shard: 'group1-shard1of1', kind: 'layers' },
  { name: 'flowers graph model', dir: 'tfjs-automl-flowers', shard: 'group1-shard1of1.bin', kind: 'graph' },
] as const;

describe('TF.js reader/writer round trip on the fixtures', () => {
  for (const f of FIXTURES) {
    it(`${f.name}: read → write → read keeps topology and every byte`, () => {
      const source = fixture(f.dir, 'model.json');
      assert.equal(sniffFormat(source), 'tfjs');
      const first = readTfjsModel(source);
      assert.equal(first.kind, f.kind);
      const out = join(newDir(), 'model.json');
      const written = writeTfjsModel(first, out);
      assert.deepEqual(written.files.map((p) => p.split('/').pop()), ['group1-shard1of1.bin', 'model.json']);
      // one group under 4 MiB: one shard, identical to the original file
      assert.ok(readFileSync(fixture(f.dir, f.shard)).equals(readFileSync(written.files[0]!)));
      const second = readTfjsModel(out);
      const original = JSON.parse(readFileSync(source, 'utf8'));
      const copy = JSON.parse(readFileSync(out, 'utf8'));
      assert.deepEqual(copy.modelTopology, original.modelTopology);
      assert.deepEqual(copy.weightsManifest[0].weights, original.weightsManifest[0].weights);
      assert.deepEqual({ ...copy, weightsManifest: null }, { ...original, weightsManifest: null });
      assert.equal(second.weights.length, first.weights.length);
      second.weights.forEach((w, i) => {
        assert.equal(w.name, first.weights[i]!.name);
        assert.ok(Buffer.from(w.bytes).equals(Buffer.from(first.weights[i]!.bytes)), w.name);
      });
      // writing the re-read copy again changes nothing either
      const again = writeTfjsModel(second, join(newDir(), 'model.json'));
      assert.ok(readFileSync(again.files[0]!).equals(readFileSync(written.files[0]!)));
      assert.equal(readFileSync(again.path, 'utf8'), readFileSync(out, 'utf8'));
    });
  }
});

/** A small model.json in `dir` with two groups, every dtype and every quantization, written by hand. */
function handMadeModel(dir: string): { path: string; expected: Record<string, number[]> } {
  const f32 = (v: number[]) => Buffer.from(new Float32Array(v).buffer);
  const str = (items: string[]) => Buffer.concat(items.flatMap((s) => {
    const b = Buffer.from(s, 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32LE(b.length);
    return [len, b];
  }));
  const u16 = (v: number[]) => Buffer.from(new Uint16Array(v).buffer);
  const group1 = Buffer.concat([
    f32([1.5, -2, 0, 3.25]), // dense/kernel [2,2]
    Buffer.from([0, 128, 255]), // u8 [3]: min -1, scale 2/255
    u16([0, 1, 65535]), // u16 [3]: min 0.5, scale 0.001
    u16([floatToHalf(0.1), floatToHalf(-3)]), // f16 [2]
  ]);
  const group2 = Buffer.concat([Buffer.from(new Int32Array([7, -9]).buffer), Buffer.from([1, 0, 1]), str(['héllo', '', 'x'])]);
  // group 1 split over two shards (TF.js concatenates them); group 2 in one
  writeFileSync(join(dir, 'g1a.bin'), group1.subarray(0, 10));
  writeFileSync(join(dir, 'g1b.bin'), group1.subarray(10));
  writeFileSync(join(dir, 'g2.bin'), group2);
  const doc = {
    format: 'graph-model',
    generatedBy: 'hand',
    convertedBy: null,
    modelTopology: { node: [{ name: 'x', op: 'Placeholder', attr: { dtype: { type: 'DT_FLOAT' } } }] },
    weightsManifest: [
      {
        paths: ['g1a.bin', 'g1b.bin'],
        weights: [
          { name: 'dense/kernel', shape: [2, 2], dtype: 'float32' },
          { name: 'u8', shape: [3], dtype: 'float32', quantization: { dtype: 'uint8', min: -1, scale: 2 / 255 } },
          { name: 'u16', shape: [3], dtype: 'float32', quantization: { dtype: 'uint16', min: 0.5, scale: 0.001 } },
          { name: 'f16', shape: [2], dtype: 'float32', quantization: { dtype: 'float16' } },
        ],
      },
      {
        paths: ['g2.bin'],
        weights: [
          { name: 'ints', shape: [2], dtype: 'int32', group: 'model' },
          { name: 'flags', shape: [3], dtype: 'bool' },
          { name: 'words', shape: [3], dtype: 'string' },
        ],
      },
    ],
  };
  const path = join(dir, 'model.json');
  writeFileSync(path, JSON.stringify(doc, null, 2));
  return {
    path,
    expected: {
      'dense/kernel': [1.5, -2, 0, 3.25],
      u8: [-1, Math.fround(-1 + 128 * (2 / 255)), Math.fround(-1 + 255 * (2 / 255))],
      u16: [0.5, Math.fround(0.5 + 0.001), Math.fround(0.5 + 65535 * 0.001)],
      f16: [Math.fround(0.0999755859375), -3],
      ints: [7, -9],
      flags: [1, 0, 1],
    },
  };
}

describe('TF.js manifest: groups, shards, dtypes and quantization', () => {
  it('decodes every dtype across groups and split shards; dequantizes as TF.js does', () => {
    const dir = newDir();
    const { path, expected } = makeModelIn(dir);
    const model = readTfjsModel(path);
    assert.equal(model.kind, 'graph');
    assert.deepEqual(model.weights.map((w) => [w.name, w.group]), [['dense/kernel', 0], ['u8', 0], ['u16', 0], ['f16', 0], ['ints', 1], ['flags', 1], ['words', 1]]);
    for (const [name, values] of Object.entries(expected)) {
      assert.deepEqual([...model.weights.find((w) => w.name === name)!.toFloat32()], values, name);
    }
    assert.equal(model.weights.find((w) => w.name === 'u8')!.storedDtype, 'uint8 (quantized)');
    assert.equal(model.weights.find((w) => w.name === 'words')!.bytes.length, 4 + 6 + 4 + 4 + 1);
    // the independent decoder agrees with the reader on every float weight
    for (const w of readWeightsIndependently(path)) {
      const mine = model.weights.find((m) => m.name === w.name)!;
      assert.equal(mine.bytes.length, w.byteLength, w.name);
      if (w.values) assert.deepEqual([...mine.toFloat32()], [...w.values], w.name);
    }
  });

  it('writes groups as groupG-shardIofN.bin of the asked size, and reads them back identically', () => {
    const { path } = makeModelIn(newDir());
    const model = readTfjsModel(path);
    const out = newDir();
    const written = writeTfjsModel(model, out, { shardBytes: 8 });
    assert.equal(written.path, join(out, 'model.json'));
    const names = readdirSync(out).sort();
    // group 1 holds 16 + 3 + 6 + 4 = 29 bytes: 4 shards of ≤ 8; group 2: 8 + 3 + 19 = 30 bytes: 4 shards
    assert.deepEqual(names, [
      'group1-shard1of4.bin', 'group1-shard2of4.bin', 'group1-shard3of4.bin', 'group1-shard4of4.bin',
      'group2-shard1of4.bin', 'group2-shard2of4.bin', 'group2-shard3of4.bin', 'group2-shard4of4.bin', 'model.json',
    ]);
    assert.equal(readFileSync(join(out, 'group1-shard4of4.bin')).length, 29 - 24);
    const back = readTfjsModel(written.path);
    back.weights.forEach((w, i) => {
      assert.ok(Buffer.from(w.bytes).equals(Buffer.from(model.weights[i]!.bytes)), w.name);
      assert.deepEqual(w.entry, model.weights[i]!.entry);
    });
    // manifest fields besides name/shape/dtype survive ("group": "model")
    assert.equal(back.weights.find((w) => w.name === 'ints')!.entry.group, 'model');
  });
});

/** A fresh folder holding the hand-made model. */
function makeModelIn(dir: string) {
  mkdirSync(dir, { recursive: true });
  return handMadeModel(dir);
}

describe('TF.js writer failures', () => {
  it('a write that fails leaves the earlier model in the folder readable and no temporary files', () => {
    const { path } = makeModelIn(newDir());
    const model = readTfjsModel(path);
    const out = newDir();
    writeTfjsModel(model, out, { shardBytes: 8 });
    const before = readFileSync(join(out, 'model.json'), 'utf8');
    mkdirSync(join(out, 'group1-shard1of1.bin')); // a folder where the next write puts a shard
    assert.throws(() => writeTfjsModel(model, out), (err: unknown) => err instanceof WhittleError && err.message.includes(join(out, 'model.json')));
    assert.equal(readFileSync(join(out, 'model.json'), 'utf8'), before);
    assert.ok(readdirSync(out).every((n) => !n.endsWith('.tmp')), readdirSync(out).join(', '));
    assert.equal(readTfjsModel(join(out, 'model.json')).weights.length, model.weights.length);
  });
});

describe('TF.js reader errors name the file and the problem', () => {
  const fails = (fn: () => unknown, file: string, pattern: RegExp) => {
    assert.throws(fn, (err: unknown) => {
      assert.ok(err instanceof WhittleError, String(err));
      assert.equal(err.code, 'BAD_INPUT');
      assert.ok(err.message.includes(file), `${err.message} names ${file}`);
      assert.match(err.message, pattern);
      return true;
    });
  };
  const editJson = (path: string, edit: (doc: Record<string, any>) => void) => {
    const doc = JSON.parse(readFileSync(path, 'utf8'));
    edit(doc);
    writeFileSync(path, JSON.stringify(doc));
  };

  it('a missing shard', () => {
    const { path } = makeModelIn(newDir());
    rmSync(join(path, '..', 'g2.bin'));
    fails(() => readTfjsModel(path), join(path, '..', 'g2.bin'), /weight shard listed in .*model\.json is missing/);
  });

  it('a truncated shard (fewer bytes than the manifest describes)', () => {
    const { path } = makeModelIn(newDir());
    truncateSync(join(path, '..', 'g1b.bin'), 12);
    fails(() => readTfjsModel(path), path, /weight "u16" runs past the end of its shards: g1a\.bin \+ g1b\.bin hold 22 bytes/);
  });

  it('a string length prefix pointing past the end', () => {
    const { path } = makeModelIn(newDir());
    truncateSync(join(path, '..', 'g2.bin'), 14);
    fails(() => readTfjsModel(path), path, /weight "words" runs past the end/);
  });

  it('malformed JSON, and JSON that is no model.json', () => {
    const { path } = makeModelIn(newDir());
    writeFileSync(path, '{"modelTopology": {"node": [}');
    fails(() => readTfjsModel(path), path, /is not valid JSON/);
    writeFileSync(path, '{"weightsManifest": []}');
    fails(() => readTfjsModel(path), path, /no modelTopology/);
  });

  it('an unknown dtype or quantization dtype', () => {
    const { path } = makeModelIn(newDir());
    editJson(path, (d) => { d.weightsManifest[1].weights[0].dtype = 'float64'; });
    fails(() => readTfjsModel(path), path, /weight "ints" has unknown dtype "float64"/);
    const second = makeModelIn(newDir()).path;
    editJson(second, (d) => { d.weightsManifest[0].weights[1].quantization.dtype = 'int4'; });
    fails(() => readTfjsModel(second), second, /weight "u8" has unknown quantization dtype "int4"/);
    const third = makeModelIn(newDir()).path;
    editJson(third, (d) => { delete d.weightsManifest[0].weights[1].quantization.scale; });
    fails(() => readTfjsModel(third), third, /weight "u8": uint8 quantization needs finite numbers min and scale/);
  });

  it('shard paths that leave the folder, duplicate weight names, bad shapes', () => {
    const { path } = makeModelIn(newDir());
    editJson(path, (d) => { d.weightsManifest[1].paths = ['../g2.bin']; });
    fails(() => readTfjsModel(path), path, /shard path "\.\.\/g2\.bin" must be a file name relative/);
    const dup = makeModelIn(newDir()).path;
    editJson(dup, (d) => { d.weightsManifest[1].weights[0].name = 'u8'; });
    fails(() => readTfjsModel(dup), dup, /weight "u8" is listed twice/);
    const shape = makeModelIn(newDir()).path;
    editJson(shape, (d) => { d.weightsManifest[0].weights[0].shape = [2, -2]; });
    fails(() => readTfjsModel(shape), shape, /weight "dense\/kernel" has shape \[2,-2\]/);
  });

  it('bytes after the last weight are reported, not fatal', () => {
    const { path } = makeModelIn(newDir());
    writeFileSync(join(path, '..', 'g2.bin'), Buffer.concat([readFileSync(join(path, '..', 'g2.bin')), Buffer.from([1, 2, 3])]));
    const model = readTfjsModel(path);
    assert.match(model.warnings.join('\n'), /g2\.bin: 3 bytes after the last weight of group 2/);
  });
});
