/**
 * TensorProto files (input_N.pb / output_N.pb of ONNX test data) through the project's ONNX codec,
 * as data-layer tensors.
 */
import { WhittleError } from '../../../api/errors.ts';
import { decodeTensorProto as decodeOnnxTensor } from '../../../native-models/formats/onnx/index.ts';
import { elemsFromBytes, type ElemArray, type ElemType } from './dtypes.ts';

export interface DecodedTensor {
  name: string;
  dtype: ElemType;
  dims: number[];
  data: ElemArray;
}

const ELEM_TYPES = new Set<string>(['float32', 'uint8', 'int8', 'uint16', 'int16', 'int32', 'int64', 'bool', 'float16', 'float64', 'uint32', 'uint64']);

export function decodeTensorProto(bytes: Uint8Array, file: string): DecodedTensor {
  const tensor = decodeOnnxTensor(bytes, file);
  if (!ELEM_TYPES.has(tensor.dtype)) {
    throw new WhittleError('UNSUPPORTED', `${file}: tensor ${tensor.name || '(unnamed)'} is ${tensor.dtype}; test data must be numeric`, { file });
  }
  if (tensor.isExternal) throw new WhittleError('UNSUPPORTED', `${file}: tensor ${tensor.name} keeps its data in an external file`, { file });
  return { name: tensor.name, dtype: tensor.dtype as ElemType, dims: tensor.dims, data: elemsFromBytes(tensor.dtype as ElemType, tensor.bytes()) };
}
