import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { floatToHalf } from '../../../native-models/ir/dtypes.ts';
import { readTfjsModel } from '../../../native-models/formats/tfjs/index.ts';
import { fixture } from '../../testing/fixtures.ts';
import { exactZeroCode, quantizeAffine, roundHalfEven } from './weight-quantization.ts';

/** Produced by testdata/converter-quantization.py: the converter's own code under numpy 1.x rules. */
const golden = JSON.parse(readFileSync(new URL('./testdata/converter-quantization.json', import.meta.url), 'utf8')) as {
  values: number[];
  uint8: { codes: number[]; min: number; scale: number; differFromFloat64: number };
  uint16: { codes: number[]; min: number; scale: number; differFromFloat64: number };
  positive: { values: number[]; codes: number[]; min: number; scale: number };
  constant: { values: number[]; codes: number[]; min: number; scale: number };
  float16: { values: number[]; bits: number[] };
};

describe('TF.js converter quantization, reproduced exactly', () => {
  it('round half to even, as numpy rounds', () => {
    assert.deepEqual([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4999, 2.5001].map(roundHalfEven), [0, 2, 2, -0, -2, -2, 2, 3]);
  });

  for (const dtype of ['uint8', 'uint16'] as const) {
    it(`${dtype}: nudged min, scale and every code equal the converter's (float32 arithmetic decides ${golden[dtype].differFromFloat64} of them)`, () => {
      const r = quantizeAffine(Float32Array.from(golden.values), dtype);
      assert.equal(r.min, golden[dtype].min);
      assert.equal(r.scale, golden[dtype].scale);
      assert.deepEqual([...r.codes], golden[dtype].codes);
      assert.ok(golden[dtype].differFromFloat64 > 0, 'the vector tells float32 from float64 arithmetic apart');
      // the nudge makes 0 exact: the code of 0 dequantizes to exactly 0 in TF.js
      const zero = exactZeroCode({ dtype, min: r.min, scale: r.scale });
      assert.notEqual(zero, null);
    });
  }

  it('all-positive weights are not nudged; constant weights are code 0 with scale 1', () => {
    const pos = quantizeAffine(Float32Array.from(golden.positive.values), 'uint8');
    assert.deepEqual([pos.min, pos.scale, [...pos.codes]], [golden.positive.min, golden.positive.scale, golden.positive.codes]);
    assert.equal(exactZeroCode({ dtype: 'uint8', min: pos.min, scale: pos.scale }), null);
    const c = quantizeAffine(Float32Array.from(golden.constant.values), 'uint8');
    assert.deepEqual([c.min, c.scale, [...c.codes]], [golden.constant.min, golden.constant.scale, golden.constant.codes]);
  });

  it('float16 is numpy astype(float16): nearest even, overflow to infinity, subnormals kept', () => {
    assert.deepEqual(golden.float16.values.map(floatToHalf), golden.float16.bits);
  });

  it("re-quantizing nsfwjs's dequantized weights reproduces all 2,619,461 stored uint8 codes", () => {
    const model = readTfjsModel(fixture('tfjs-nsfwjs-mobilenet-v2', 'model.json'));
    let codes = 0;
    for (const w of model.weights) {
      const r = quantizeAffine(w.toFloat32(), 'uint8');
      assert.deepEqual(r.codes, w.codes(), w.name);
      codes += r.codes.length;
    }
    assert.equal(codes, 2619461);
  });
});
