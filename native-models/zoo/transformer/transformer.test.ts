import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { prunableWeights } from '../../../core/passes/prune/prunable.ts';
import { readOnnxFile } from '../../formats/onnx/index.ts';
import { seededRandom } from '../../ir/random.ts';
import { createSession, runSession } from '../../runtimes/onnxruntime.ts';
import { CORPUS_DIR, loadCorpus, windows } from './corpus.ts';
import { INPUT, onnxPerplexity, OUTPUT, writeTransformer } from './export.ts';
import { forward, initParams, namedParams, Workspace, type TransformerSpec } from './model.ts';
import { heldoutFromCorpus, loadTestBed, readNpyInt64, writeNpyInt64 } from './testbed.ts';
import { DEFAULT_TRAIN, train } from './train.ts';

const spec: TransformerSpec = { vocab: 11, context: 8, dModel: 16, heads: 2, layers: 2, ffn: 24 };

test('the ONNX export computes the JavaScript forward pass (logits and perplexity)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'whittle-tf-'));
  try {
    const p = initParams(spec, 3);
    const r = seededRandom(4);
    for (const [, a] of namedParams(p)) for (let i = 0; i < a.length; i++) a[i] = a[i]! + 0.2 * (r() - 0.5);
    const path = join(dir, 'm.onnx');
    writeTransformer(spec, p, path);
    const B = 3, T = spec.context;
    const tokens = Int32Array.from({ length: B * T + 1 }, () => Math.floor(r() * spec.vocab));
    const w = windows(tokens, T);
    assert.equal(w.count, B);
    const ws = new Workspace(spec, B, T, false);
    const js = forward(spec, p, ws, w.inputs, w.targets);
    const open = await createSession(path, { ep: 'cpu' });
    const out = await runSession(open.session, { [INPUT]: { dtype: 'int64', dims: [B, T], data: BigInt64Array.from(w.inputs, (v) => BigInt(v)) } });
    await open.session.release();
    const logits = out[OUTPUT]!;
    assert.deepEqual(logits.dims, [B, T, spec.vocab]);
    let max = 0;
    for (let i = 0; i < ws.logits.length; i++) max = Math.max(max, Math.abs((logits.data as Float32Array)[i]! - ws.logits[i]!));
    assert.ok(max < 1e-4, `max |Δlogit| ${max}`);
    const ort = await onnxPerplexity(path, w.inputs, w.targets, T);
    assert.ok(Math.abs(ort.nll - js.loss) < 1e-5, `${ort.nll} vs ${js.loss}`);
    // the compression passes see the 13 linear weights as [K, N] MatMul weights
    const weights = prunableWeights(readOnnxFile(path)).layers;
    assert.equal(weights.length, 6 * spec.layers + 1);
    assert.ok(weights.every((x) => x.node.opType === 'MatMul' && x.shape.length === 2));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('training is deterministic to the bit and lowers the loss', (t) => {
  if (!existsSync(CORPUS_DIR)) { t.skip(`${CORPUS_DIR} is not here`); return; }
  const corpus = loadCorpus();
  const o = { ...DEFAULT_TRAIN, spec: { context: 16, dModel: 16, heads: 2, layers: 1, ffn: 32 }, steps: 12, batch: 4, warmup: 2 };
  const a = train(corpus, o);
  const b = train(corpus, o);
  assert.deepEqual(namedParams(a.params).map(([, x]) => [...x]), namedParams(b.params).map(([, x]) => [...x]));
  assert.ok(a.curve[a.curve.length - 1]![1] < a.curve[0]![1], JSON.stringify(a.curve));
});

test('the saved test bed: card, token files and perplexity as recorded', async (t) => {
  let bed;
  try {
    bed = loadTestBed();
  } catch (err) {
    t.skip(String((err as Error).message));
    return;
  }
  const { card } = bed;
  assert.ok(card.parameters < 500_000 && readFileSync(bed.model).length < 2 * 1024 * 1024, 'small enough to keep in the repository');
  assert.equal(card.vocab.length, card.spec.vocab);
  assert.equal(bed.calib.length, card.calibration.windows * card.spec.context);
  assert.ok(card.perplexity.relativeDifference < 1e-3);
  const ppl = await onnxPerplexity(bed.model, bed.heldout.inputs, bed.heldout.targets, card.spec.context);
  assert.ok(Math.abs(ppl.perplexity - card.perplexity.onnxruntime) < 1e-4 * card.perplexity.onnxruntime, `${ppl.perplexity} vs card ${card.perplexity.onnxruntime}`);
  if (existsSync(CORPUS_DIR)) {
    const corpus = loadCorpus();
    assert.equal(corpus.sha256, card.corpus.sha256, 'the same licence texts as at training time');
    assert.deepEqual(corpus.vocab, card.vocab);
    assert.deepEqual(heldoutFromCorpus(), readNpyInt64(join(bed.dir, 'heldout.npy')).data);
  }
});

test('int64 .npy round trip', () => {
  const dir = mkdtempSync(join(tmpdir(), 'whittle-npy-'));
  try {
    const data = Int32Array.from([0, 1, 85, 7, 3, 2]);
    writeNpyInt64(join(dir, 'a.npy'), [2, 3], data);
    const back = readNpyInt64(join(dir, 'a.npy'));
    assert.deepEqual(back.shape, [2, 3]);
    assert.deepEqual(back.data, data);
    assert.equal(readFileSync(join(dir, 'a.npy')).length % 16, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
