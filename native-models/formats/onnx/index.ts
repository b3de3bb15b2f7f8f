export { decodeOnnx, readOnnxFile, type ReadOptions, readTensorProtoFile, decodeTensorProto, checkExternalLocation, MAX_PROTO_BYTES } from './read.ts';
export { writeOnnxFile, writeOnnxReferencingWeights, type WriteOptions, type WriteReport } from './write.ts';
