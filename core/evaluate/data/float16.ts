/**
 * IEEE half precision for data tensors: the one implementation lives with the IR's dtypes
 * (round to nearest even, like numpy's astype(float16) and onnxruntime's Cast).
 */
export { floatToHalf as float32ToFloat16Bits, halfToFloat as float16BitsToNumber } from '../../../native-models/ir/dtypes.ts';
