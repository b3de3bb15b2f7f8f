/**
 * Diagnostic: does onnxruntime's QLinearConv on this CPU compute exact integer arithmetic?
 *
 * The ShuffleNet int8 fixture's test_data_set_0/output_0.pb is not reproduced bit for bit on every
 * x86 CPU. This script exposes four QLinearConv layers' uint8 inputs and outputs, recomputes each
 * output with exact int32 accumulation and round-half-to-even requantisation, and counts mismatches.
 * Zero mismatches means this machine's kernels are exact, so an output that differs from
 * output_0.pb was produced by different (for example saturating u8s8 AVX2) kernels.
 *
 *   node --import tsx bench/shufflenet-exactness.ts
 */
import { fixture } from '../core/testing/fixtures.ts';
import ort from 'onnxruntime-node';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readOnnxFile, writeOnnxFile, readTensorProtoFile } from '../native-models/formats/onnx/index.ts';
const d = fixture('shufflenet-int8') + '/';
const dir = mkdtempSync(join(tmpdir(), 'whittle-exact-'));
const debugModel = join(dir, 'shufflenet-debug.onnx');
const m = readOnnxFile(d + 'shufflenet-v2-12-int8.onnx');
const g = m.graph;
const order = g.topologicalOrder().filter((n) => n.opType === 'QLinearConv');
const picks = [order[0]!, order[2]!, order[5]!, order[20]!];
for (const n of picks) for (const name of [n.inputs[0]!, n.outputs[0]!]) g.outputs.push({ name, type: { kind: 'tensor', elemType: 2, shape: null }, extra: {} });
writeOnnxFile(m, debugModel);
const s = await ort.InferenceSession.create(debugModel, { graphOptimizationLevel: 'disabled' });
const inp = readTensorProtoFile(d + 'test_data_set_0/input_0.pb');
const out = await s.run({ input: new ort.Tensor('float32', inp.toFloat32(), inp.dims) });
const rne = (x: number) => { const f = Math.floor(x); const r = x - f; return r > 0.5 ? f + 1 : r < 0.5 ? f : (f % 2 === 0 ? f : f + 1); };
for (const n of picks) {
  const c = (i: number) => g.constant(n.inputs[i]!)!;
  const x = out[n.inputs[0]!]!; const y = out[n.outputs[0]!]!;
  const xd = x.data as Uint8Array; const yd = y.data as Uint8Array;
  const xs = c(1).toFloat32()[0]!, xz = c(2).toFloat32()[0]!;
  const w = c(3); const wq = w.toFloat32(); const ws = c(4).toFloat32(), wz = c(5).toFloat32();
  const ys = c(6).toFloat32()[0]!, yz = c(7).toFloat32()[0]!;
  const b = n.inputs[8] ? c(8).toFloat32() : null;
  const [, C, H, W] = x.dims as number[]; const [M, Cg, KH, KW] = w.dims;
  const group = n.attrInt('group', 1); const st = n.attrInts('strides') ?? [1,1]; const pads = n.attrInts('pads') ?? [0,0,0,0];
  const [, , OH, OW] = y.dims as number[];
  let mismatch = 0, total = 0, maxd = 0;
  for (let mo = 0; mo < M!; mo++) {
    const gi = Math.floor(mo / (M! / group));
    const scale = Math.fround(Math.fround(xs * ws[ws.length > 1 ? mo : 0]!) / ys);
    for (let oh = 0; oh < OH!; oh++) for (let ow = 0; ow < OW!; ow++) {
      let acc = b ? b[mo]! : 0;
      for (let ci = 0; ci < Cg!; ci++) for (let kh = 0; kh < KH!; kh++) for (let kw = 0; kw < KW!; kw++) {
        const ih = oh * st[0]! - pads[0]! + kh, iw = ow * st[1]! - pads[1]! + kw;
        const xv = ih < 0 || iw < 0 || ih >= H! || iw >= W! ? xz : xd[((gi * Cg! + ci) * H! + ih) * W! + iw]!;
        acc += (xv - xz) * (wq[((mo * Cg! + ci) * KH! + kh) * KW! + kw]! - wz[wz.length > 1 ? mo : 0]!);
      }
      const exact = Math.min(255, Math.max(0, rne(Math.fround(acc * scale)) + yz));
      const got = yd[(mo * OH! + oh) * OW! + ow]!;
      total++; if (got !== exact) { mismatch++; maxd = Math.max(maxd, Math.abs(got - exact)); }
    }
  }
  console.log(n.name, 'C', C, 'group', group, 'kernel', KH, KW, 'mismatch', mismatch, '/', total, 'max', maxd, 'xz', xz, 'wz', wz[0]);
}
rmSync(dir, { recursive: true, force: true });
