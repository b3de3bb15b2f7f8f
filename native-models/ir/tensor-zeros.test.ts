import assert from 'node:assert/strict';
import { it } from 'node:test';
import { DataType } from './dtypes.ts';
import { Tensor } from './tensor.ts';

it('float16 zeros (±0) are counted two at a time as one at a time would: every length, many zeros and near-zeros', () => {
  let x = 12345;
  const next = () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x; };
  for (let trial = 0; trial < 300; trial++) {
    const n = trial < 40 ? trial : next() % 2000;
    const halves = Uint16Array.from({ length: n }, () => {
      const r = next();
      // ±0, the smallest subnormals (0x0001, 0x8001: not zero), the largest lane value, anything
      return [0, 0x8000, 0x0001, 0x8001, 0x7fff, 0xffff, 0x0100][r % 9] ?? (r >>> 8) & 0xffff;
    });
    let expected = 0;
    for (const h of halves) if ((h & 0x7fff) === 0) expected++;
    for (const type of [DataType.FLOAT16, DataType.BFLOAT16]) {
      assert.equal(Tensor.fromTypedArray('t', type, [n], halves.slice()).countZeros(), expected, `n = ${n}`);
    }
  }
});
