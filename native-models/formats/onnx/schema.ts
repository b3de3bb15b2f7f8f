import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

/**
 * The ONNX schema as flat descriptors, built once from onnx.proto through protobufjs' parser.
 * The codec walks these instead of protobufjs' generated decoders because it must keep tensor
 * bytes as views into the file, keep int64 exact (bigint), and keep unknown fields byte for byte.
 */
export type ScalarKind =
  | 'double' | 'float' | 'int32' | 'uint32' | 'sint32' | 'fixed32' | 'sfixed32'
  | 'int64' | 'uint64' | 'sint64' | 'fixed64' | 'sfixed64' | 'bool' | 'string' | 'bytes' | 'enum';

export interface FieldDescriptor {
  id: number;
  name: string;
  kind: ScalarKind | 'message';
  repeated: boolean;
  packed: boolean;
  /** For message fields: the nested message's descriptor (filled after all are created). */
  message: MessageDescriptor | null;
  /** Repeated numeric fields of TensorProto decode into typed arrays (they can hold millions). */
  bulk: boolean;
}

export interface MessageDescriptor {
  name: string;
  fields: FieldDescriptor[]; // sorted by field number: the order the encoder writes
  byId: Map<number, FieldDescriptor>;
}

const BULK_FIELDS = new Set(['float_data', 'int32_data', 'int64_data', 'double_data', 'uint64_data']);

function loadDescriptors(): Map<string, MessageDescriptor> {
  const here = dirname(fileURLToPath(import.meta.url));
  const source = readFileSync(join(here, 'onnx.proto'), 'utf8');
  const root = protobuf.parse(source, { keepCase: true }).root;
  root.resolveAll();
  const byName = new Map<string, MessageDescriptor>();
  const pending: [FieldDescriptor, protobuf.Type][] = [];
  const visit = (ns: protobuf.NamespaceBase) => {
    for (const nested of ns.nestedArray) {
      if (nested instanceof protobuf.Type) {
        const fields = [...nested.fieldsArray].sort((a, b) => a.id - b.id).map((f): FieldDescriptor => {
          const resolved = f.resolvedType;
          const kind: FieldDescriptor['kind'] = resolved instanceof protobuf.Type ? 'message' : resolved instanceof protobuf.Enum ? 'enum' : (f.type as ScalarKind);
          const fd: FieldDescriptor = { id: f.id, name: f.name, kind, repeated: f.repeated, packed: f.repeated && f.packed && kind !== 'message' && kind !== 'string' && kind !== 'bytes', message: null, bulk: nested.name === 'TensorProto' && BULK_FIELDS.has(f.name) };
          if (resolved instanceof protobuf.Type) pending.push([fd, resolved]);
          return fd;
        });
        byName.set(nested.fullName.replace(/^\./, ''), { name: nested.name, fields, byId: new Map(fields.map((f) => [f.id, f])) });
      }
      if (nested instanceof protobuf.Namespace) visit(nested);
    }
  };
  visit(root);
  for (const [fd, type] of pending) fd.message = byName.get(type.fullName.replace(/^\./, '')) ?? null;
  return byName;
}

const DESCRIPTORS = loadDescriptors();

export function descriptor(name: string): MessageDescriptor {
  const d = DESCRIPTORS.get(`onnx.${name}`);
  if (!d) throw new Error(`onnx.proto has no message ${name}`);
  return d;
}

export const MODEL_PROTO = descriptor('ModelProto');
export const TENSOR_PROTO = descriptor('TensorProto');
