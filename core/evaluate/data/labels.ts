/**
 * Class labels from arrays: a vector of class indices, an [N,1] column, or one-hot / score rows
 * (argmax). Labels are small (4 bytes a sample), so they are read whole.
 */
import { badInput } from '../../../api/errors.ts';
import { elemAsNumber, type ElemArray, type ElemType } from './dtypes.ts';

export function labelsFromArray(dtype: ElemType, shape: number[], data: ElemArray, file: string): Int32Array {
  const n = shape[0] ?? 0;
  const width = shape.length === 1 ? 1 : shape.length === 2 ? shape[1]! : -1;
  if (width < 1) throw badInput(file, `labels must be a vector [N] or a matrix [N,classes], got shape [${shape.join(',')}]`);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    if (width === 1) {
      const v = elemAsNumber(dtype, data, i);
      if (!Number.isInteger(v) || v < 0) throw badInput(file, `label ${i} is ${v}; labels must be class indices (whole numbers ≥ 0)`);
      out[i] = v;
    } else {
      let best = 0;
      for (let c = 1; c < width; c++) if (elemAsNumber(dtype, data, i * width + c) > elemAsNumber(dtype, data, i * width + best)) best = c;
      out[i] = best;
    }
  }
  return out;
}
