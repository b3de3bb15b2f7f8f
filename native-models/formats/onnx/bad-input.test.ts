/**
 * A corpus of hostile inputs (in the style of Netron's test/models.json): one table of cases, each
 * building its file in a temp folder from the real fixtures, and each run through the CLI exactly
 * as a user would. Every case must end in a one-line error that names the file, exit code 2, and
 * no stack trace — never an internal error, a crash or a hang.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { crc32 } from 'node:zlib';
import { PNG } from 'pngjs';
import { WhittleError } from '../../../api/errors.ts';
import { whittle } from '../../../cli/testing.ts';
import { fixture, REPO_ROOT } from '../../../core/testing/fixtures.ts';
import { DataType } from '../../ir/dtypes.ts';
import type { Model } from '../../ir/model.ts';
import { Tensor } from '../../ir/tensor.ts';
import { decodeMessage, encodeMessage, type ProtoMessage } from './codec.ts';
import { readOnnxFile, readTensorProtoFile } from './read.ts';
import { MODEL_PROTO } from './schema.ts';
import { writeOnnxFile } from './write.ts';
import { seededRandom } from '../../ir/random.ts';

const MNIST = fixture('mnist', 'mnist.onnx');
const SQUEEZENET_FP16 = fixture('squeezenet', 'squeezenet1.0_fp16.onnx');
const SHUFFLENET = fixture('shufflenet-int8', 'shufflenet-v2-12-int8.onnx');
const IRIS = fixture('iris', 'iris_network.onnx');
const SHUFFLENET_INPUT = fixture('shufflenet-int8', 'test_data_set_0', 'input_0.pb');
const JPEG = fixture('imagenet-100', 'jpeg', 'n01440764_tench.JPEG');
const TFJS_MODEL_JSON = fixture('tfjs-nsfwjs-mobilenet-v2', 'model.json');

const ROOT = mkdtempSync(join(tmpdir(), 'whittle-bad-input-'));
after(() => rmSync(ROOT, { recursive: true, force: true }));

// ------------------------------------------------------------------ how hostile files are made


function put(dir: string, name: string, bytes: Uint8Array | string): string {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

function truncated(source: string, keep: (size: number) => number) {
  return (dir: string) => {
    const bytes = readFileSync(source);
    return put(dir, 'truncated.onnx', bytes.subarray(0, keep(bytes.length)));
  };
}

/**
 * Flips one bit at a seeded offset. Flips in tensor data (most of a file) leave a valid model, so
 * a region can aim at the first or last bytes, where the graph's structure is encoded.
 */
function bitFlipped(source: string, seed: number, region: 'head' | 'tail' | 'anywhere' = 'anywhere') {
  return (dir: string) => {
    const bytes = Buffer.from(readFileSync(source));
    const rand = seededRandom(seed);
    const [lo, hi] = region === 'head' ? [0, 256] : region === 'tail' ? [bytes.length - 2048, bytes.length] : [0, bytes.length];
    const offset = lo + Math.floor(rand() * (hi - lo));
    bytes[offset] = bytes[offset]! ^ (1 << Math.floor(rand() * 8));
    return put(dir, 'flipped.onnx', bytes);
  };
}

/** Reads mnist into the IR, lets the case break it, and writes it with our own writer. */
function mutatedModel(mutate: (m: Model) => void, options: Parameters<typeof writeOnnxFile>[2] = {}) {
  return (dir: string) => {
    const model = readOnnxFile(MNIST);
    mutate(model);
    const path = join(dir, 'model.onnx');
    writeOnnxFile(model, path, options);
    return path;
  };
}

/** For breakage the IR cannot express (wire types, nesting): edit the decoded protobuf itself. */
function mutatedProto(source: string, mutate: (p: ProtoMessage) => void) {
  return (dir: string) => {
    const proto = decodeMessage(readFileSync(source), MODEL_PROTO);
    mutate(proto);
    return put(dir, 'model.onnx', encodeMessage(proto, MODEL_PROTO));
  };
}

/**
 * mnist written with every tensor in external data, then the first external tensor's entries (or
 * the data file) edited by the case.
 */
function externalDataModel(edit: (entries: Map<string, string>, dir: string, dataPath: string) => void) {
  return (dir: string) => {
    const path = join(dir, 'model.onnx');
    const report = writeOnnxFile(readOnnxFile(MNIST), path, { externalData: true, sizeThreshold: 0 });
    const proto = decodeMessage(readFileSync(path), MODEL_PROTO);
    const tensor = ((proto.graph as ProtoMessage).initializer as ProtoMessage[]).find((t) => t.data_location === 1)!;
    const list = tensor.external_data as ProtoMessage[];
    const entries = new Map(list.map((e) => [e.key as string, e.value as string]));
    edit(entries, dir, report.externalDataPath!);
    tensor.external_data = [...entries].map(([key, value]) => ({ key, value }));
    writeFileSync(path, encodeMessage(proto, MODEL_PROTO));
    return path;
  };
}

/** A minimal ZIP (stored, no compression) holding one file: what PyTorch checkpoints are. */
function zipOf(name: string, data: Uint8Array): Uint8Array {
  const nameBytes = Buffer.from(name);
  const crc = crc32(data);
  const local = Buffer.alloc(30);
  local.writeUInt32LE(0x04034b50, 0);
  local.writeUInt16LE(20, 4);
  local.writeUInt32LE(crc, 14);
  local.writeUInt32LE(data.length, 18);
  local.writeUInt32LE(data.length, 22);
  local.writeUInt16LE(nameBytes.length, 26);
  const central = Buffer.alloc(46);
  central.writeUInt32LE(0x02014b50, 0);
  central.writeUInt16LE(20, 4);
  central.writeUInt16LE(20, 6);
  central.writeUInt32LE(crc, 16);
  central.writeUInt32LE(data.length, 20);
  central.writeUInt32LE(data.length, 24);
  central.writeUInt16LE(nameBytes.length, 28);
  const centralOffset = local.length + nameBytes.length + data.length;
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(1, 8);
  end.writeUInt16LE(1, 10);
  end.writeUInt32LE(central.length + nameBytes.length, 12);
  end.writeUInt32LE(centralOffset, 16);
  return Buffer.concat([local, nameBytes, data, central, nameBytes, end]);
}

/** An If node whose then-branch holds another If, `levels` deep (3 protobuf messages per level). */
function nestedIfGraph(levels: number): ProtoMessage {
  const floatOut = (name: string) => ({ name, type: { tensor_type: { elem_type: DataType.FLOAT } } });
  const leaf = (): ProtoMessage => ({ name: 'leaf', node: [{ op_type: 'Identity', input: ['x'], output: ['y0'] }], output: [floatOut('y0')] });
  let graph = leaf();
  for (let i = 1; i <= levels; i++) {
    // only the then-branch nests: sharing one branch object for both would double the file per level
    graph = {
      name: `level${i}`,
      node: [{ op_type: 'If', input: ['cond'], output: [`y${i}`], attribute: [
        { name: 'then_branch', type: 5, g: graph },
        { name: 'else_branch', type: 5, g: leaf() },
      ] }],
      output: [floatOut(`y${i}`)],
    };
  }
  return graph;
}

/** Raw protobuf bytes of one field: a tag with an arbitrary wire type, then a payload. */
function rawField(field: number, wireType: number, payload: number[]): Uint8Array {
  const tag: number[] = [];
  for (let v = (field << 3) | wireType; ; v >>>= 7) {
    if (v < 0x80) { tag.push(v); break; }
    tag.push((v & 0x7f) | 0x80);
  }
  return Uint8Array.from([...tag, ...payload]);
}

// ------------------------------------------------------------------ the corpus

interface BadInputCase {
  name: string;
  /** Builds the file in its own folder and returns the path handed to `whittle inspect`. */
  make: (dir: string) => string;
  /** What the one error line must say (beyond naming the file). */
  expect: RegExp;
  /** Bit flips may leave a model that still reads: then it must inspect cleanly instead. */
  mayRead?: boolean;
  /** A known bug outside this folder: the case stays in the corpus, reported as todo until fixed. */
  todo?: string;
}

const TRUNCATED = /truncated|runs past the end|overruns/;
/** Every way the reader can refuse a damaged model (a flip may land in any field). */
const FLIP_ERROR = /not a valid ONNX model|not an ONNX model|needs \d+ (bytes|values)|strings for \d+ elements|unknown data type|negative dimension|absurd|two initializers|external|sparse tensor without/;

const CASES: BadInputCase[] = [
  // files that are not models at all
  { name: 'empty file', make: (d) => put(d, 'empty.onnx', ''), expect: /is empty \(0 bytes\)/ },
  { name: 'missing file', make: (d) => join(d, 'no-such-model.onnx'), expect: /no such file/ },
  { name: 'a directory', make: (d) => { mkdirSync(join(d, 'model.onnx')); return join(d, 'model.onnx'); }, expect: /is a directory/ },
  { name: 'random bytes', make: (d) => { const r = seededRandom(7); return put(d, 'random.onnx', Uint8Array.from({ length: 4096 }, () => Math.floor(r() * 256))); }, expect: /not a valid ONNX model|not an ONNX model/ },
  { name: 'a text file', make: (d) => put(d, 'readme.onnx', 'This is not a model.\nIt is a note about one.\n'), expect: /is a text file, not an ONNX model/ },
  { name: 'a JSON file that is not TF.js', make: (d) => put(d, 'labels.onnx', JSON.stringify({ labels: ['cat', 'dog'], version: 2 })), expect: /is a JSON file, not an ONNX model/ },
  { name: 'a JPEG photo', make: (d) => put(d, 'photo.onnx', readFileSync(JPEG)), expect: /is a JPEG image, not an ONNX model/ },
  { name: 'a PNG image', make: (d) => { const png = new PNG({ width: 2, height: 2 }); png.data.fill(200); return put(d, 'image.onnx', PNG.sync.write(png)); }, expect: /is a PNG image, not an ONNX model/ },
  { name: 'a ZIP archive (PyTorch checkpoint style) holding a model', make: (d) => put(d, 'checkpoint.pt', zipOf('archive/data.pkl', readFileSync(MNIST))), expect: /is a ZIP archive, not an ONNX model; PyTorch .*export or convert the model to ONNX first$/ },
  // TF.js models are read too (native-models/formats/tfjs); one without its weight shard is not
  { name: 'a TF.js model.json without its weight shard', make: (d) => put(d, 'model.json', readFileSync(TFJS_MODEL_JSON)), expect: /weight shard listed in .*model\.json is missing/ },

  // damaged ONNX files
  { name: 'truncated to 1 byte', make: truncated(MNIST, () => 1), expect: TRUNCATED },
  { name: 'truncated to 100 bytes', make: truncated(SQUEEZENET_FP16, () => 100), expect: TRUNCATED },
  { name: 'truncated to half', make: truncated(MNIST, (n) => n >> 1), expect: TRUNCATED },
  { name: 'truncated to half (shufflenet)', make: truncated(SHUFFLENET, (n) => n >> 1), expect: TRUNCATED },
  { name: 'last byte missing', make: truncated(MNIST, (n) => n - 1), expect: TRUNCATED },
  { name: 'last byte missing (iris)', make: truncated(IRIS, (n) => n - 1), expect: TRUNCATED },
  // a flipped bit may leave a valid model (mayRead): it must then inspect cleanly
  ...(['head', 'tail', 'anywhere'] as const).flatMap((region) => [1, 2, 3, 4].map((seed): BadInputCase => ({
    name: `mnist with a bit flipped (${region}, seed ${seed})`, make: bitFlipped(MNIST, seed, region), expect: FLIP_ERROR, mayRead: true,
  }))),
  ...[1, 2].map((seed): BadInputCase => ({ name: `iris with a bit flipped (head, seed ${seed})`, make: bitFlipped(IRIS, seed, 'head'), expect: FLIP_ERROR, mayRead: true })),
  ...[4, 5].map((seed): BadInputCase => ({ name: `shufflenet-int8 with a bit flipped (tail, seed ${seed})`, make: bitFlipped(SHUFFLENET, seed, 'tail'), expect: FLIP_ERROR, mayRead: true })),
  ...[1, 2].map((seed): BadInputCase => ({ name: `squeezenet fp16 with a bit flipped (tail, seed ${seed})`, make: bitFlipped(SQUEEZENET_FP16, seed, 'tail'), expect: FLIP_ERROR, mayRead: true })),

  // well-formed protobuf, wrong ONNX
  { name: 'a model with no graph', make: (d) => put(d, 'nograph.onnx', encodeMessage({ ir_version: 8n, opset_import: [{ version: 13n }], producer_name: 'hostile' }, MODEL_PROTO)), expect: /has no graph/ },
  { name: 'a node field with the wrong wire type', make: mutatedProto(MNIST, (p) => { ((p.graph as ProtoMessage).node as ProtoMessage[])[0]!.$unknown = [rawField(4, 0, [5])]; }), expect: /NodeProto\.op_type has wire type 0, expected 2/ },
  { name: 'subgraphs nested 40 If nodes deep', make: (d) => put(d, 'deep.onnx', encodeMessage({ ir_version: 8n, opset_import: [{ version: 13n }], graph: nestedIfGraph(40) }, MODEL_PROTO)), expect: /nested more than 100 deep/ },
  // a crash before the fix in wire.ts: skipping groups recursed once per level and overflowed the stack
  // (field 16: unknown to ModelProto, and its two-byte tag is not text, so the bytes are not sniffed as such)
  { name: 'unknown protobuf groups nested 300,000 deep', make: (d) => put(d, 'groups.onnx', Buffer.alloc(600_000, rawField(16, 3, []))), expect: /groups nested more than 100 deep/ },
  { name: 'a string field that is not UTF-8', make: mutatedProto(MNIST, (p) => { p.producer_name = undefined; p.$unknown = [rawField(2, 2, [2, 0xc3, 0x28])]; }), expect: /not UTF-8/ },

  // tensors that lie about themselves
  { name: 'raw_data shorter than the dims say', make: mutatedModel((m) => { const t = m.graph.initializers.values().next().value!; t.source = { kind: 'inline', bytes: new Uint8Array(12) }; }), expect: /needs \d+ bytes but raw_data holds 12/ },
  { name: 'a negative dimension', make: mutatedModel((m) => { m.graph.initializers.values().next().value!.dims = [-8, 1, 5, 5]; }), expect: /negative dimension \(-8\)/ },
  { name: 'absurd dimensions (2^50 elements)', make: mutatedModel((m) => { m.graph.initializers.values().next().value!.dims = [2 ** 25, 2 ** 25]; }), expect: /absurd dimensions/ },
  { name: 'a single absurd dimension (2^62)', make: mutatedModel((m) => { m.graph.initializers.values().next().value!.dims = [2 ** 62]; }), expect: /absurd dimension/ },
  { name: 'an unknown data_type', make: mutatedModel((m) => { m.graph.initializers.values().next().value!.dataType = 99; }), expect: /unknown data type \(99\)/ },
  { name: 'two initializers with the same name', make: mutatedModel((m) => { const [a, b] = [...m.graph.initializers.values()]; const copy = new Tensor({ name: a!.name, dataType: b!.dataType, dims: b!.dims, source: b!.source }); m.graph.initializers.set(`${a!.name}-twin`, copy); }), expect: /two initializers named/ },
  // a newline in a name would split the error line; control characters must come out escaped
  { name: 'a tensor name holding a newline and an escape sequence', make: mutatedModel((m) => { const t = m.graph.initializers.values().next().value!; t.name = 'evil\nname\x1b[31m'; t.dataType = 99; }), expect: /initializer "evil\\u000aname\\u001b\[31m".*unknown data type/ },

  // external data
  { name: 'external data location that is absolute', make: externalDataModel((e) => e.set('location', '/etc/passwd')), expect: /is an absolute path/ },
  { name: 'external data location that climbs with ../', make: externalDataModel((e) => e.set('location', '../../secret.bin')), expect: /climbs out of the model's folder/ },
  { name: 'external data location naming a missing file', make: externalDataModel((e) => e.set('location', 'gone.data')), expect: /external data file gone\.data does not exist/ },
  { name: 'external data location naming a folder', make: externalDataModel((e, dir) => { mkdirSync(join(dir, 'weights')); e.set('location', 'weights'); }), expect: /is not a regular file/ },
  { name: 'external data offset+length past the end of the data file', make: externalDataModel((e, _dir, data) => truncateSync(data, Number(e.get('offset')) + 10)), expect: /holds \d+ bytes, but the tensor needs bytes \d+\.\.\d+/ },
  { name: 'external data offset that is not a number', make: externalDataModel((e) => e.set('offset', '-4096')), expect: /offset "-4096" is not a byte count/ },
  { name: 'external data length that disagrees with the dims', make: externalDataModel((e) => e.set('length', '4')), expect: /external data length 4 disagrees/ },

  // a TensorProto (ONNX test data) instead of a model, and a corrupt one
  { name: 'a TensorProto .pb given as a model', make: () => SHUFFLENET_INPUT, expect: /is an ONNX TensorProto \(test data such as input_0\.pb\), not an ONNX model/ },
  { name: 'a corrupt TensorProto .pb', make: truncated(SHUFFLENET_INPUT, (n) => n - 1000), expect: /not a valid ONNX model|not an ONNX model/ },

  // the IR's op table is a plain object: op names that are Object.prototype members crash inspect
  { name: 'a node whose op_type is "constructor"', make: mutatedModel((m) => { m.graph.nodes[0]!.opType = 'constructor'; }), expect: /./, mayRead: true },
];

// ------------------------------------------------------------------ running a case through the CLI

async function inspect(path: string, json: boolean): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await whittle(...(json ? ['inspect', path, '--json'] : ['inspect', path]));
  return { code: r.code, stdout: r.out, stderr: r.err };
}

describe('hostile inputs to `whittle inspect`', () => {
  assert.ok(CASES.length >= 24, 'the corpus keeps at least 24 cases');
  CASES.forEach((c, i) => {
    // each test bounded: a hang is a failure, not a stuck run
    test(c.name, { timeout: 30_000, todo: c.todo }, async () => {
      const dir = join(ROOT, `case-${i}`);
      mkdirSync(dir);
      const path = c.make(dir);

      const human = await inspect(path, false);
      if (c.mayRead && human.code === 0) {
        // still a model: it must inspect completely, and --json must give the inspect document
        const json = await inspect(path, true);
        assert.equal(json.code, 0, json.stderr);
        const doc = JSON.parse(json.stdout) as { format?: string; nodes?: number };
        assert.equal(doc.format, 'onnx');
        assert.equal(typeof doc.nodes, 'number');
        return;
      }
      assert.equal(human.code, 2, `exit code (stderr: ${human.stderr})`);
      assert.equal(human.stdout, '');
      const lines = human.stderr.split('\n');
      assert.equal(lines.length, 2, `exactly one stderr line, got ${JSON.stringify(human.stderr)}`);
      assert.equal(lines[1], '');
      const line = lines[0]!;
      assert.ok(line.startsWith('whittle: '), line);
      assert.ok(line.includes(path), `the error names ${path}: ${line}`);
      assert.match(line, c.expect);
      assert.ok(!human.stderr.includes('    at '), 'no stack trace');

      const json = await inspect(path, true);
      assert.equal(json.code, 2);
      const stdoutLines = json.stdout.trimEnd().split('\n');
      assert.equal(stdoutLines.length, 1, 'stdout is exactly one JSON document');
      const doc = JSON.parse(stdoutLines[0]!) as { error?: { code?: string; message?: string } };
      assert.deepEqual(Object.keys(doc), ['error']);
      assert.match(doc.error!.code!, /^(BAD_INPUT|NOT_FOUND|UNSUPPORTED)$/);
      assert.equal(`whittle: ${doc.error!.message}`, line);
    });
  });
});

describe('many seeded corruptions of every fixture', () => {
  // Beyond the named cases: hundreds of flips and multi-byte smashes. Each must read or fail as
  // bad input (exit 0 or 2); an exit of 1 is an internal error, a thrown exception a crash.
  const sources = [MNIST, IRIS, SQUEEZENET_FP16, SHUFFLENET];
  for (const source of sources) {
    test(`${source.split('/').pop()}: 150 seeded corruptions`, { timeout: 120_000 }, async () => {
      const original = readFileSync(source);
      const dir = join(ROOT, `fuzz-${source.split('/').pop()}`);
      mkdirSync(dir);
      const rand = seededRandom(original.length);
      const outcomes = { read: 0, badInput: 0 };
      for (let k = 0; k < 150; k++) {
        const bytes = Buffer.from(original);
        const smashes = k % 3 === 0 ? 8 : 1;
        for (let j = 0; j < smashes; j++) bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
        const path = put(dir, 'fuzzed.onnx', bytes);
        const r = await inspect(path, false);
        assert.ok(r.code === 0 || r.code === 2, `corruption ${k}: exit ${r.code}: ${r.stderr}`);
        if (r.code === 2) {
          assert.equal(r.stderr.split('\n').length, 2, r.stderr);
          assert.ok(r.stderr.includes(path));
          outcomes.badInput++;
        } else outcomes.read++;
      }
      assert.equal(outcomes.read + outcomes.badInput, 150);
    });
  }
});

describe('readTensorProtoFile on hostile test data', () => {
  test('a truncated input_0.pb is bad input that names the file', () => {
    const path = truncated(SHUFFLENET_INPUT, (n) => n - 1000)(mkdtempSync(join(ROOT, 'pb-')));
    assert.throws(() => readTensorProtoFile(path), (err: unknown) => err instanceof WhittleError && err.code === 'BAD_INPUT' && err.message.includes(path) && /truncated|runs past the end/.test(err.message));
  });

  test('raw_data that disagrees with the dims is bad input', () => {
    const bytes = Buffer.from(readFileSync(SHUFFLENET_INPUT));
    // the first field is dims[0] = 1 (tag 0x08, value 0x01): make it 2, so the data is half of what is needed
    assert.deepEqual([bytes[0], bytes[1]], [0x08, 0x01]);
    bytes[1] = 0x02;
    const path = put(mkdtempSync(join(ROOT, 'pb-')), 'input_0.pb', bytes);
    assert.throws(() => readTensorProtoFile(path), /needs \d+ bytes but raw_data holds \d+/);
  });

  test('a JPEG given as a TensorProto says it is a JPEG', () => {
    assert.throws(() => readTensorProtoFile(JPEG), /is a JPEG image, not a TensorProto/);
  });
});

describe('files that are not regular files', () => {
  // Run in a child process: opening a FIFO blocks the whole thread, which no test timeout can stop.
  test('a named pipe (FIFO) is refused, not waited on', { timeout: 30_000 }, () => {
    const fifo = join(mkdtempSync(join(ROOT, 'fifo-')), 'model.onnx');
    execFileSync('mkfifo', [fifo]);
    const r = spawnSync(process.execPath, [join(REPO_ROOT, 'bin', 'whittle.mjs'), 'inspect', fifo], { timeout: 5_000, encoding: 'utf8' });
    assert.equal(r.signal, null, 'whittle inspect hung on a FIFO');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /not a regular file/);
  });
});
