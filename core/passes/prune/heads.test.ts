/**
 * Attention-head pruning (heads.ts) on the project's transformer test bed: the blocks are found in
 * the exported graph; a removed head whose output rows are zero changes nothing (so q/k/v columns,
 * biases, the Reshape shapes and Wo's rows are cut consistently, checked by onnxruntime on the
 * written file); the written model is smaller and runs; refitting o_proj on calibration data lowers
 * the held-back perplexity; and the bad inputs: no attention, activation importance without data,
 * an excluded block.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { PruneStep } from '../../../api/recipe.ts';
import { readOnnxFile, writeOnnxFile } from '../../../native-models/formats/onnx/index.ts';
import { DataType } from '../../../native-models/ir/dtypes.ts';
import { AttrType, Node, type Model } from '../../../native-models/ir/model.ts';
import { addInitializer, intAttr } from '../quantize/graph-edit.ts';
import { createSession, runSession } from '../../../native-models/runtimes/onnxruntime.ts';
import { TappedModel } from '../../calibrate/tap.ts';
import { toFloatScores } from '../../../native-models/runtimes/host-tensor.ts';
import { onnxPerplexity } from '../../../native-models/zoo/transformer/export.ts';
import { loadTestBed } from '../../../native-models/zoo/transformer/testbed.ts';
import { fixture } from '../../testing/fixtures.ts';
import { inspectModel } from '../../inspect.ts';
import { createPassContext } from '../pass.ts';
import { findAttentionBlocks } from './attention.ts';
import { headPrunePass, keptHeads, keptHeadsGlobal, type HeadPruneDetails } from './heads.ts';
import { pruneModel } from './prune-model.ts';

const bed = loadTestBed();
const dir = mkdtempSync(join(tmpdir(), 'whittle-heads-'));
after(() => rmSync(dir, { recursive: true, force: true }));

async function logits(path: string, windows = 4): Promise<Float32Array> {
  const open = await createSession(path, { ep: 'cpu' });
  try {
    const T = bed.card.spec.context;
    const ids = BigInt64Array.from(bed.heldout.inputs.subarray(0, windows * T), (v) => BigInt(v));
    const out = await runSession(open.session, { input_ids: { dtype: 'int64', dims: [windows, T], data: ids } });
    return Float32Array.from(toFloatScores(out['logits']!).data);
  } finally {
    await open.session.release();
  }
}

/** The largest |a − b| of two logit arrays. */
const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

/** Zeroes one head's output-projection rows per [weight, head]: that head then writes nothing (and is the least important). */
function silenceHeads(model: Model, heads: readonly (readonly [string, number])[]): void {
  for (const [name, head] of heads) {
    const w = model.graph.initializers.get(name)!;
    const data = Float32Array.from(w.typed() as Float32Array);
    data.fill(0, head * 32 * 128, (head + 1) * 32 * 128);
    w.setData(data);
  }
}

const perplexity = async (path: string) => (await onnxPerplexity(path, bed.heldout.inputs, bed.heldout.targets, bed.card.spec.context)).perplexity;

describe('attention-head pruning on the transformer test bed', () => {
  it('finds both attention blocks: 4 heads of 32, queries/keys/values into one output projection', () => {
    const model = readOnnxFile(bed.model);
    const { blocks, notes } = findAttentionBlocks(model.graph, 17);
    assert.deepEqual(notes, []);
    assert.deepEqual(blocks.map((b) => [b.name, b.heads, b.headDim, b.q.matmul.name, b.k.matmul.name, b.v.matmul.name]), [
      ['h0.attn.o_proj', 4, 32, 'h0.attn.q_proj', 'h0.attn.k_proj', 'h0.attn.v_proj'],
      ['h1.attn.o_proj', 4, 32, 'h1.attn.q_proj', 'h1.attn.k_proj', 'h1.attn.v_proj'],
    ]);
  });

  it('removing a head that writes nothing (zero output rows) leaves every logit as it was', async () => {
    // head 1 of block 0 and head 2 of block 1 silenced: they are then the least important (‖Wo,h‖ = 0)
    const model = readOnnxFile(bed.model);
    silenceHeads(model, [['h0.attn.o_proj.weight', 1], ['h1.attn.o_proj.weight', 2]]);
    const silenced = join(dir, 'silenced.onnx');
    writeOnnxFile(model, silenced);
    const prunedPath = join(dir, 'silenced-pruned.onnx');
    const r = await pruneModel({ input: silenced, output: prunedPath, step: PruneStep.parse({ method: 'heads', sparsity: 0.25 }), seed: 0 });
    const details = r.details as unknown as HeadPruneDetails;
    assert.deepEqual(details.blocks.map((b) => b.removed), [[1], [2]]);
    assert.equal(details.headsBefore, 8);
    assert.equal(details.headsAfter, 6);
    const worst = maxDiff(await logits(silenced), await logits(prunedPath));
    assert.ok(worst < 1e-4, `largest logit change ${worst}`);
    // the written graph is really smaller: 3 heads of 32 everywhere, one shape constant per block
    const out = readOnnxFile(prunedPath);
    for (const p of ['h0', 'h1']) {
      for (const x of ['q', 'k', 'v']) {
        assert.deepEqual(out.graph.constant(out.graph.nodes.find((n) => n.name === `${p}.attn.${x}_proj`)!.inputs[1]!)!.dims, [128, 96]);
      }
      assert.deepEqual(out.graph.constant(out.graph.nodes.find((n) => n.name === `${p}.attn.o_proj`)!.inputs[1]!)!.dims, [96, 128]);
    }
    assert.equal(out.graph.initializers.has('shape.heads'), false, 'the shared 4-head shape is gone (each block has its own)');
    assert.equal(r.parametersAfter, r.parametersBefore - 2 * 4 * 32 * 128 - 2 * 3 * 32);
  });

  it('25 % and 50 %: perplexity rises with the heads removed; refitting o_proj on calibration data takes most of it back', async () => {
    const fp32 = await perplexity(bed.model);
    const results: Record<string, number> = {};
    for (const sparsity of [0.25, 0.5]) {
      for (const refit of [false, true]) {
        const output = join(dir, `p-${sparsity}-${refit}.onnx`);
        const r = await pruneModel({ input: bed.model, output, step: PruneStep.parse({ method: 'heads', sparsity, ...(refit ? { calib: { path: bed.calibPath } } : {}) }), seed: 0 });
        const details = r.details as unknown as HeadPruneDetails;
        assert.equal(details.headsAfter, 8 - 2 * Math.round(4 * sparsity));
        if (refit) for (const b of details.blocks) assert.ok(b.errorRefit! < b.errorCut!, `${b.block}: o_proj error refitted ${b.errorRefit} vs cut ${b.errorCut}`);
        results[`${sparsity} ${refit ? 'refit' : 'cut'}`] = await perplexity(output);
      }
    }
    const r = results as Record<'0.25 cut' | '0.25 refit' | '0.5 cut' | '0.5 refit', number>;
    assert.ok(fp32 < r['0.25 refit'] && r['0.25 refit'] < r['0.25 cut'], JSON.stringify({ fp32, ...r }));
    assert.ok(r['0.25 cut'] < r['0.5 cut'] && r['0.5 refit'] < r['0.5 cut'], JSON.stringify({ fp32, ...r }));
  });

  it('the refit is sequential: a block after a pruned one is fitted on its inputs as they now are (here: as before, since the removed head was silent)', async () => {
    // block 0's head 1 writes nothing: pruning and refitting block 0 leaves block 1's inputs as they were,
    // so block 1's fit on the paired (current, unpruned) statistics must equal its fit on the unpruned ones
    const model = readOnnxFile(bed.model);
    silenceHeads(model, [['h0.attn.o_proj.weight', 1]]);
    const silenced = join(dir, 'silenced-h0.onnx');
    writeOnnxFile(model, silenced);
    const block1 = async (exclude: string[]) => {
      const r = await pruneModel({ input: silenced, output: join(dir, `seq-${exclude.length}.onnx`), step: PruneStep.parse({ method: 'heads', sparsity: 0.25, exclude, calib: { path: bed.calibPath } }), seed: 0 });
      const details = r.details as unknown as HeadPruneDetails;
      return details.blocks.find((b) => b.block === 'h1.attn.o_proj')!;
    };
    const sequential = await block1([]);
    const alone = await block1(['h0.attn.q_proj']); // block 0 left whole: block 1 measured on the unpruned model
    assert.deepEqual(sequential.removed, alone.removed);
    for (const key of ['errorCut', 'errorRefit'] as const) {
      assert.ok(Math.abs(sequential[key]! - alone[key]!) <= 1e-3 * alone[key]!, `${key}: ${sequential[key]} (paired statistics) vs ${alone[key]} (unpruned)`);
    }
  });

  it('the reported o_proj error of a block after a pruned one is what onnxruntime measures on the written model', async () => {
    // 2 of 4 heads per block, refitted: block 1 is fitted on the paired (pruned-so-far, unpruned) statistics
    const output = join(dir, 'seq-measured.onnx');
    const r = await pruneModel({ input: bed.model, output, step: PruneStep.parse({ method: 'heads', sparsity: 0.5, calib: { path: bed.calibPath } }), seed: 0 });
    const reported = (r.details as unknown as HeadPruneDetails).blocks[1]!;
    const T = bed.card.spec.context;
    const outputOf = async (path: string) => {
      const tapped = await TappedModel.create(readOnnxFile(path), ['h1.attn.o_proj.out']);
      try {
        const ids = BigInt64Array.from(bed.calib, (v) => BigInt(v));
        const values = await tapped.run({ input_ids: { dtype: 'int64', dims: [ids.length / T, T], data: ids } });
        return Float64Array.from(toFloatScores(values['h1.attn.o_proj.out']!).data);
      } finally {
        await tapped.close();
      }
    };
    const [before, after] = [await outputOf(bed.model), await outputOf(output)];
    // the refit's definition (ReconstructedLayer): ‖WX − ŴX‖² / ‖WX‖², WX the unpruned o_proj output less its bias
    const D = 128;
    const bias = readOnnxFile(bed.model).graph.constant('h1.attn.o_proj.bias')!.typed() as Float32Array;
    let num = 0;
    let den = 0;
    for (let i = 0; i < before.length; i++) {
      num += (after[i]! - before[i]!) ** 2;
      den += (before[i]! - bias[i % D]!) ** 2;
    }
    const measured = num / den;
    assert.ok(Math.abs(measured - reported.errorRefit!) < 0.01 * reported.errorRefit!, `measured ${measured} vs reported ${reported.errorRefit}`);
  });

  it('shapes built at run time (Shape → Gather → Unsqueeze → Concat, as PyTorch exports with dynamic axes): the same blocks, the same pruned function', async () => {
    // the test bed rewritten the way torch.onnx.export writes x.view(B, T, H, d) and x.view(B, T, H·d)
    const model = readOnnxFile(bed.model);
    const g = model.graph;
    const int64 = (name: string, dims: number[], values: number[]) => addInitializer(g, name, DataType.INT64, dims, BigInt64Array.from(values.map(BigInt)));
    int64('dyn.i0', [], [0]);
    int64('dyn.i1', [], [1]);
    int64('dyn.axes', [1], [0]);
    int64('dyn.heads', [], [4]); // a scalar, unsqueezed: the H entry
    int64('dyn.dim', [1], [32]);
    int64('dyn.width', [1], [128]);
    let n = 0;
    for (const reshape of g.nodes.filter((x) => x.opType === 'Reshape' && (x.inputs[1] === 'shape.heads' || x.inputs[1] === 'shape.merge'))) {
      const split = reshape.inputs[1] === 'shape.heads';
      const t = `dyn${n++}`;
      const made = [
        new Node({ opType: 'Shape', inputs: [reshape.inputs[0]!], outputs: [`${t}.shape`] }),
        new Node({ opType: 'Gather', inputs: [`${t}.shape`, 'dyn.i0'], outputs: [`${t}.b`], attributes: [intAttr('axis', 0)] }),
        new Node({ opType: 'Gather', inputs: [`${t}.shape`, 'dyn.i1'], outputs: [`${t}.t`], attributes: [intAttr('axis', 0)] }),
        new Node({ opType: 'Unsqueeze', inputs: [`${t}.b`, 'dyn.axes'], outputs: [`${t}.b1`] }),
        new Node({ opType: 'Unsqueeze', inputs: [`${t}.t`, 'dyn.axes'], outputs: [`${t}.t1`] }),
        ...(split ? [new Node({ opType: 'Unsqueeze', inputs: ['dyn.heads', 'dyn.axes'], outputs: [`${t}.h1`] })] : []),
        new Node({ name: `${t}.concat`, opType: 'Concat', inputs: split ? [`${t}.b1`, `${t}.t1`, `${t}.h1`, 'dyn.dim'] : [`${t}.b1`, `${t}.t1`, 'dyn.width'], outputs: [`${t}.target`], attributes: [intAttr('axis', 0)] }),
      ];
      g.nodes.splice(g.nodes.indexOf(reshape), 0, ...made);
      reshape.inputs[1] = `${t}.target`;
    }
    g.initializers.delete('shape.heads');
    g.initializers.delete('shape.merge');
    const dynamic = join(dir, 'dynamic-shapes.onnx');
    writeOnnxFile(model, dynamic);
    assert.ok(maxDiff(await logits(bed.model), await logits(dynamic)) < 1e-5, 'the rewritten test bed computes the same function');

    const { blocks } = findAttentionBlocks(readOnnxFile(dynamic).graph, 17);
    assert.deepEqual(blocks.map((b) => [b.name, b.heads, b.headDim, b.q.shape.concat !== null, b.mergeShape.entries]), [
      ['h0.attn.o_proj', 4, 32, true, [null, null, 128]],
      ['h1.attn.o_proj', 4, 32, true, [null, null, 128]],
    ]);
    const pruned = { constant: join(dir, 'const-pruned.onnx'), dynamic: join(dir, 'dynamic-pruned.onnx') };
    await pruneModel({ input: bed.model, output: pruned.constant, step: PruneStep.parse({ method: 'heads', sparsity: 0.25 }), seed: 0 });
    await pruneModel({ input: dynamic, output: pruned.dynamic, step: PruneStep.parse({ method: 'heads', sparsity: 0.25 }), seed: 0 });
    assert.ok(maxDiff(await logits(pruned.constant), await logits(pruned.dynamic)) < 1e-4, 'the same heads removed, the same outputs');
    // the old Concats and the H entries that fed only them are gone; the run-time entries are shared by the new ones
    const out = readOnnxFile(pruned.dynamic).graph;
    assert.equal(out.nodes.filter((x) => x.opType === 'Concat').length, 8);
    assert.ok(!out.nodes.some((x) => /^dyn\d+\.concat$/.test(x.name)), 'no original Concat is left');
    assert.ok(!out.nodes.some((x) => x.inputs.includes('dyn.heads')), 'the 4-head scalar is no longer read');
    assert.equal(out.nodes.filter((x) => x.opType === 'Shape').length, 8, 'each Shape still feeds its new Concat');
  });

  it('a fused q/k/v projection (one MatMul, bias, Split in three, as GPT-2 exports it): the same blocks, the same pruned function, the Split resized', async () => {
    // the test bed rewritten with GPT-2's c_attn: [128, 384] = Wq | Wk | Wv, then Split along the last
    // axis — block 0 with stored sizes (a constant both could share), block 1 in equal parts without them
    const model = readOnnxFile(bed.model);
    const g = model.graph;
    addInitializer(g, 'qkv.split', DataType.INT64, [3], BigInt64Array.from([128n, 128n, 128n]));
    for (const i of [0, 1]) {
      const at = (name: string) => g.nodes.find((x) => x.name === name)!;
      const parts = ['q', 'k', 'v'].map((x) => ({ matmul: at(`h${i}.attn.${x}_proj`), add: at(`h${i}.attn.${x}_proj.bias_add`) }));
      const weights = parts.map((x) => g.initializers.get(x.matmul.inputs[1]!)!.typed() as Float32Array);
      const fusedWeight = new Float32Array(128 * 384);
      for (let r = 0; r < 128; r++) weights.forEach((w, j) => fusedWeight.set(w.subarray(r * 128, (r + 1) * 128), r * 384 + j * 128));
      const fusedBias = new Float32Array(384);
      parts.forEach((x, j) => fusedBias.set(g.initializers.get(x.add.inputs[1]!)!.typed() as Float32Array, j * 128));
      addInitializer(g, `h${i}.attn.c_attn.weight`, DataType.FLOAT, [128, 384], fusedWeight);
      addInitializer(g, `h${i}.attn.c_attn.bias`, DataType.FLOAT, [384], fusedBias);
      const made = [
        new Node({ name: `h${i}.attn.c_attn`, opType: 'MatMul', inputs: [`h${i}.ln_1.out`, `h${i}.attn.c_attn.weight`], outputs: [`h${i}.attn.c_attn.matmul`] }),
        new Node({ name: `h${i}.attn.c_attn.bias_add`, opType: 'Add', inputs: [`h${i}.attn.c_attn.matmul`, `h${i}.attn.c_attn.bias`], outputs: [`h${i}.attn.c_attn.out`] }),
        new Node({ name: `h${i}.attn.split`, opType: 'Split', inputs: i === 0 ? [`h${i}.attn.c_attn.out`, 'qkv.split'] : [`h${i}.attn.c_attn.out`], outputs: parts.map((x) => x.add.outputs[0]!), attributes: [intAttr('axis', -1)] }),
      ];
      g.nodes.splice(g.nodes.indexOf(parts[0]!.matmul), 0, ...made);
      for (const x of parts) {
        g.nodes.splice(g.nodes.indexOf(x.matmul), 1);
        g.nodes.splice(g.nodes.indexOf(x.add), 1);
        g.initializers.delete(x.matmul.inputs[1]!);
        g.initializers.delete(x.add.inputs[1]!);
      }
    }
    const fusedPath = join(dir, 'fused-qkv.onnx');
    writeOnnxFile(model, fusedPath);
    assert.ok(maxDiff(await logits(bed.model), await logits(fusedPath)) < 1e-5, 'the rewritten test bed computes the same function');

    const { blocks, notes } = findAttentionBlocks(readOnnxFile(fusedPath).graph, 17);
    assert.deepEqual(notes, []);
    assert.deepEqual(blocks.map((b) => [b.name, b.heads, b.headDim, b.q.matmul.name, b.k.matmul === b.q.matmul && b.v.matmul === b.q.matmul, [b.q, b.k, b.v].map((x) => x.fused?.offset)]), [
      ['h0.attn.o_proj', 4, 32, 'h0.attn.c_attn', true, [0, 128, 256]],
      ['h1.attn.o_proj', 4, 32, 'h1.attn.c_attn', true, [0, 128, 256]],
    ]);
    // inspect lists the fused projection once (the Compress view's estimate scales each listed layer)
    assert.deepEqual(inspectModel(readOnnxFile(fusedPath)).attention.map((b) => b.layers), [['h0.attn.c_attn', 'h0.attn.o_proj'], ['h1.attn.c_attn', 'h1.attn.o_proj']]);

    // without data (weight importance) and with it (activation importance, o_proj refitted, global)
    for (const step of [{ method: 'heads', sparsity: 0.25 }, { method: 'heads', sparsity: 0.5, scope: 'global', importance: 'activation', calib: { path: bed.calibPath } }]) {
      const pruned = { separate: join(dir, 'separate-pruned.onnx'), fused: join(dir, 'fused-pruned.onnx') };
      const a = await pruneModel({ input: bed.model, output: pruned.separate, step: PruneStep.parse(step), seed: 0 });
      const b = await pruneModel({ input: fusedPath, output: pruned.fused, step: PruneStep.parse(step), seed: 0 });
      const removed = (r: typeof a) => (r.details as unknown as HeadPruneDetails).blocks.map((x) => x.removed);
      assert.deepEqual(removed(b), removed(a), `${JSON.stringify(step)}: the same heads go`);
      assert.ok(maxDiff(await logits(pruned.separate), await logits(pruned.fused)) < 1e-4, `${JSON.stringify(step)}: the same outputs`);
      const out = readOnnxFile(pruned.fused).graph;
      const kept = removed(b).map((r) => 4 - r.length);
      for (const i of [0, 1]) {
        const width = kept[i]! * 32;
        assert.deepEqual(out.initializers.get(out.nodes.find((x) => x.name === `h${i}.attn.c_attn`)!.inputs[1]!)!.dims, [128, 3 * width]);
        const split = out.nodes.find((x) => x.name === `h${i}.attn.split`)!;
        if (i === 0) assert.deepEqual(Array.from(out.initializers.get(split.inputs[1]!)!.typed() as BigInt64Array, Number), [width, width, width]);
        else assert.equal(split.inputs.length, 1, 'equal parts stay equal without stored sizes');
      }
      assert.ok(!out.initializers.has('qkv.split'), 'the old sizes are gone once unread');
    }
  });

  it('rotary position embeddings between the head split and the scores (LLaMA-style: keys split (0,2,1,3), rotated, then transposed (0,1,3,2)): found, and a silent head removed with every logit unchanged', async () => {
    const model = readOnnxFile(bed.model);
    const g = model.graph;
    const T = bed.card.spec.context;
    const d = 32;
    // HF's rotary tables: angle(t, i) = t·10000^(−2i/d) for i < d/2, repeated for the second half
    const cos = new Float32Array(T * d);
    const sin = new Float32Array(T * d);
    for (let t = 0; t < T; t++) for (let j = 0; j < d; j++) {
      const angle = t * 10000 ** (-2 * (j % (d / 2)) / d);
      cos[t * d + j] = Math.cos(angle);
      sin[t * d + j] = Math.sin(angle);
    }
    addInitializer(g, 'rope.cos', DataType.FLOAT, [1, 1, T, d], cos);
    addInitializer(g, 'rope.sin', DataType.FLOAT, [1, 1, T, d], sin);
    const int64 = (name: string, v: number) => addInitializer(g, name, DataType.INT64, [1], BigInt64Array.from([BigInt(v)]));
    int64('rope.0', 0);
    int64('rope.half', d / 2);
    int64('rope.d', d);
    int64('rope.axis', -1);
    const rotary = (x: string, p: string): Node[] => [
      new Node({ name: `${p}.x2`, opType: 'Slice', inputs: [x, 'rope.half', 'rope.d', 'rope.axis'], outputs: [`${p}.x2`] }),
      new Node({ name: `${p}.x1`, opType: 'Slice', inputs: [x, 'rope.0', 'rope.half', 'rope.axis'], outputs: [`${p}.x1`] }),
      new Node({ name: `${p}.neg`, opType: 'Neg', inputs: [`${p}.x2`], outputs: [`${p}.neg`] }),
      new Node({ name: `${p}.rot`, opType: 'Concat', inputs: [`${p}.neg`, `${p}.x1`], outputs: [`${p}.rot`], attributes: [intAttr('axis', -1)] }),
      new Node({ name: `${p}.xc`, opType: 'Mul', inputs: [x, 'rope.cos'], outputs: [`${p}.xc`] }),
      new Node({ name: `${p}.rs`, opType: 'Mul', inputs: [`${p}.rot`, 'rope.sin'], outputs: [`${p}.rs`] }),
      new Node({ name: `${p}.out`, opType: 'Add', inputs: [`${p}.xc`, `${p}.rs`], outputs: [`${p}.out`] }),
    ];
    for (const i of [0, 1]) {
      const scores = g.nodes.find((x) => x.name === `h${i}.attn.scores`)!;
      const kt = g.nodes.find((x) => x.name === `h${i}.attn.k_proj.t`)!;
      kt.setAttr('perm', AttrType.INTS, [0n, 2n, 1n, 3n]);
      const made = [
        ...rotary(scores.inputs[0]!, `h${i}.rope.q`),
        ...rotary(kt.outputs[0]!, `h${i}.rope.k`),
        new Node({ name: `h${i}.rope.k.t`, opType: 'Transpose', inputs: [`h${i}.rope.k.out`], outputs: [`h${i}.rope.k.t`], attributes: [{ name: 'perm', type: AttrType.INTS, value: [0n, 1n, 3n, 2n], extra: {} }] }),
      ];
      g.nodes.splice(g.nodes.indexOf(scores), 0, ...made);
      scores.inputs = [`h${i}.rope.q.out`, `h${i}.rope.k.t`];
    }
    // one head per block writes nothing (zero o_proj rows): the one head pruning takes at 25 %
    silenceHeads(model, [['h0.attn.o_proj.weight', 3], ['h1.attn.o_proj.weight', 0]]);
    const rotaryPath = join(dir, 'rotary.onnx');
    writeOnnxFile(model, rotaryPath);
    const { blocks, notes } = findAttentionBlocks(readOnnxFile(rotaryPath).graph, 17);
    assert.deepEqual(notes, []);
    assert.deepEqual(blocks.map((b) => [b.name, b.heads, b.q.region.length, b.k.region.length, b.v.region.length]), [['h0.attn.o_proj', 4, 7, 8, 0], ['h1.attn.o_proj', 4, 7, 8, 0]]);

    const prunedPath = join(dir, 'rotary-pruned.onnx');
    const r = await pruneModel({ input: rotaryPath, output: prunedPath, step: PruneStep.parse({ method: 'heads', sparsity: 0.25 }), seed: 0 });
    assert.deepEqual((r.details as unknown as HeadPruneDetails).blocks.map((b) => b.removed), [[3], [0]]);
    const worst = maxDiff(await logits(rotaryPath), await logits(prunedPath));
    assert.ok(worst < 1e-4, `largest logit change ${worst}`);
    // a per-head table (dims[−3] = H) is not head-local: that block is not taken
    const perHead = readOnnxFile(rotaryPath);
    addInitializer(perHead.graph, 'rope.per_head', DataType.FLOAT, [1, 4, T, d], new Float32Array(4 * T * d).fill(1));
    perHead.graph.nodes.find((x) => x.name === 'h0.rope.q.xc')!.inputs[1] = 'rope.per_head';
    assert.deepEqual(findAttentionBlocks(perHead.graph, 17).blocks.map((b) => b.name), ['h1.attn.o_proj']);
  });

  it('grouped-query attention (2 key/value heads repeated for 4 query heads, as repeat_kv exports): heads go by whole groups, a silent group removed with every logit unchanged', async () => {
    const model = readOnnxFile(bed.model);
    const g = model.graph;
    const T = bed.card.spec.context;
    const int64 = (name: string, values: number[]) => addInitializer(g, name, DataType.INT64, [values.length], BigInt64Array.from(values.map(BigInt)));
    int64('gqa.split', [0, 0, 2, 32]);
    int64('gqa.axes', [2]);
    int64('gqa.expand.k', [1, 2, 2, 32, T]);
    int64('gqa.expand.v', [1, 2, 2, T, 32]);
    int64('gqa.heads.k', [0, 4, 32, T]);
    int64('gqa.heads.v', [0, 4, T, 32]);
    // keys and values keep heads 0 and 2 of the test bed's four (columns 0–31 and 64–95)
    const kvColumns = [...Array.from({ length: 32 }, (_, c) => c), ...Array.from({ length: 32 }, (_, c) => 64 + c)];
    for (const i of [0, 1]) {
      for (const x of ['k', 'v'] as const) {
        const w = g.initializers.get(`h${i}.attn.${x}_proj.weight`)!;
        const full = w.typed() as Float32Array;
        w.setData(Float32Array.from({ length: 128 * 64 }, (_, j) => full[Math.floor(j / 64) * 128 + kvColumns[j % 64]!]!), { dims: [128, 64] });
        const bias = g.initializers.get(`h${i}.attn.${x}_proj.bias`)!;
        const b = bias.typed() as Float32Array;
        bias.setData(Float32Array.from(kvColumns, (c) => b[c]!), { dims: [64] });
        g.nodes.find((n) => n.name === `h${i}.attn.${x}_proj.heads`)!.inputs[1] = 'gqa.split';
        const t = g.nodes.find((n) => n.name === `h${i}.attn.${x}_proj.t`)!;
        const reader = g.nodes.find((n) => n.inputs.includes(t.outputs[0]!))!;
        const p = `h${i}.attn.${x}_repeat`;
        const made = [
          new Node({ name: `${p}.unsqueeze`, opType: 'Unsqueeze', inputs: [t.outputs[0]!, 'gqa.axes'], outputs: [`${p}.unsqueeze`] }),
          new Node({ name: `${p}.expand`, opType: 'Expand', inputs: [`${p}.unsqueeze`, `gqa.expand.${x}`], outputs: [`${p}.expand`] }),
          new Node({ name: `${p}.reshape`, opType: 'Reshape', inputs: [`${p}.expand`, `gqa.heads.${x}`], outputs: [`${p}.out`] }),
        ];
        g.nodes.splice(g.nodes.indexOf(reader), 0, ...made);
        reader.inputs[reader.inputs.indexOf(t.outputs[0]!)] = `${p}.out`;
      }
    }
    // block 0's second group (query heads 2 and 3) and block 1's first (0 and 1) write nothing
    silenceHeads(model, [['h0.attn.o_proj.weight', 2], ['h0.attn.o_proj.weight', 3], ['h1.attn.o_proj.weight', 0], ['h1.attn.o_proj.weight', 1]]);
    const gqaPath = join(dir, 'gqa.onnx');
    writeOnnxFile(model, gqaPath);
    const { blocks, notes } = findAttentionBlocks(readOnnxFile(gqaPath).graph, 17);
    assert.deepEqual(notes, []);
    assert.deepEqual(blocks.map((b) => [b.name, b.heads, b.kvHeads, b.groupSize, b.k.repeat !== null, b.v.repeat !== null]), [['h0.attn.o_proj', 4, 2, 2, true, true], ['h1.attn.o_proj', 4, 2, 2, true, true]]);
    assert.deepEqual(inspectModel(readOnnxFile(gqaPath)).attention.map((b) => b.kvHeads), [2, 2]);

    const prunedPath = join(dir, 'gqa-pruned.onnx');
    const r = await pruneModel({ input: gqaPath, output: prunedPath, step: PruneStep.parse({ method: 'heads', sparsity: 0.5 }), seed: 0 });
    assert.deepEqual((r.details as unknown as HeadPruneDetails).blocks.map((b) => b.removed), [[2, 3], [0, 1]]);
    const worst = maxDiff(await logits(gqaPath), await logits(prunedPath));
    assert.ok(worst < 1e-4, `largest logit change ${worst}`);
    // one group of 2 query heads left: q [128, 64], k and v [128, 32], o_proj [64, 128], the repeat for one group
    const out = readOnnxFile(prunedPath).graph;
    const weightOf = (name: string) => out.constant(out.nodes.find((n) => n.name === name)!.inputs[1]!)!.dims;
    const shapeOf = (name: string) => Array.from(out.constant(out.nodes.find((n) => n.name === name)!.inputs[1]!)!.typed() as BigInt64Array, Number);
    for (const i of [0, 1]) {
      assert.deepEqual([weightOf(`h${i}.attn.q_proj`), weightOf(`h${i}.attn.k_proj`), weightOf(`h${i}.attn.v_proj`), weightOf(`h${i}.attn.o_proj`)], [[128, 64], [128, 32], [128, 32], [64, 128]]);
      assert.deepEqual([shapeOf(`h${i}.attn.k_repeat.expand`), shapeOf(`h${i}.attn.k_repeat.reshape`)], [[1, 1, 2, 32, T], [0, 2, 32, T]]);
    }
  });

  it('--scope global: ranking heads across blocks takes more from the block whose heads matter less, and does better', async () => {
    const outputs = { block: join(dir, 'g-block.onnx'), global: join(dir, 'g-global.onnx') };
    const kept: Record<string, number[][]> = {};
    for (const scope of ['block', 'global'] as const) {
      const r = await pruneModel({ input: bed.model, output: outputs[scope], step: PruneStep.parse({ method: 'heads', sparsity: 0.5, scope: scope === 'global' ? 'global' : 'layer', calib: { path: bed.calibPath } }), seed: 0 });
      const details = r.details as unknown as HeadPruneDetails;
      assert.equal(details.headsAfter, 4, `${scope}: half of the 8 heads`);
      kept[scope] = details.blocks.map((b) => b.kept);
    }
    assert.deepEqual(kept['block']!.map((k) => k.length), [2, 2]);
    assert.notDeepEqual(kept['global']!.map((k) => k.length), [2, 2], 'global pruning is uneven on the test bed');
    const [block, global] = [await perplexity(outputs.block), await perplexity(outputs.global)];
    assert.ok(global < block, `global ${global} vs per block ${block}`);
  });

  it('keeps the most important heads, rounding the count and never removing the last', () => {
    assert.deepEqual(keptHeadsGlobal([[5, 1, 6], [2, 3]], 0.4), [[0, 2], [1]], 'the two lowest of all go');
    assert.deepEqual(keptHeadsGlobal([[5, 6], [1]], 0.67), [[1], [0]], 'a block\'s last head stays: the next lowest goes instead');
    assert.deepEqual(keptHeadsGlobal([[1, 1], [1, 1]], 0.5), [[1], [1]], 'ties: by block, then head; a block\'s last head stays');
    assert.deepEqual(keptHeads([3, 1, 2, 4], 0.25), [0, 2, 3]);
    assert.deepEqual(keptHeads([3, 1, 2, 4], 0.5), [0, 3]);
    assert.deepEqual(keptHeads([3, 1, 2, 4], 0.99), [3]);
    assert.deepEqual(keptHeads([1, 1, 1, 1], 0.5), [0, 1], 'ties: the first heads stay');
    assert.deepEqual(keptHeads([5, 6], 0.2), [0, 1], 'round(2 × 0.2) = 0 removed');
  });

  it('bad input: no attention, activation importance without data, an excluded block', async () => {
    await assert.rejects(pruneModel({ input: fixture('mnist', 'mnist.onnx'), output: join(dir, 'mnist.onnx'), step: PruneStep.parse({ method: 'heads', sparsity: 0.5 }), seed: 0 }),
      /mnist\.onnx: no multi-head attention block found/);
    await assert.rejects(headPrunePass.run(readOnnxFile(bed.model), { sparsity: 0.5, importance: 'activation' }, createPassContext()), /activation importance is measured on calibration data/);
    const model = readOnnxFile(bed.model);
    const report = await headPrunePass.run(model, { sparsity: 0.5, exclude: ['h1.attn.v_proj'] }, createPassContext());
    const details = report.details as unknown as HeadPruneDetails;
    assert.deepEqual(details.blocks.map((b) => b.block), ['h0.attn.o_proj']);
    assert.deepEqual(details.skipped, [{ block: 'h1.attn.o_proj', reason: 'h1.attn.v_proj is excluded' }]);
    assert.deepEqual(model.graph.constant('h1.attn.v_proj.weight')!.dims, [128, 128]);
  });
});
