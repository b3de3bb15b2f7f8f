import { closeSync, openSync, readSync } from 'node:fs';
import { descriptor, type MessageDescriptor } from './schema.ts';
import { WIRE_FIXED32, WIRE_FIXED64, WIRE_LEN, WIRE_VARINT } from './wire.ts';

/**
 * Reading an inline model without reading its big tensors. `readOnnxFile` reads the whole file into
 * one fresh buffer, and on some machines a fresh buffer costs far more than the read itself: every
 * 4 KiB page is a fault on first touch (measured 3.3 ms per MiB in the Firecracker VMs this project
 * is benchmarked in — a 256 MiB model took 0.85 s of system time to read, 68 ms through a reused
 * buffer). A pass that streams the weights through its own reused buffers only needs the graph.
 *
 * So: walk the protobuf structure with positioned reads (tags and lengths only), note the
 * `raw_data` payloads of at least `minBytes` of the tensors the reader turns into Tensors, read
 * everything else into a zero-filled buffer of the file's size, and leave the payloads' pages
 * untouched (a large calloc'd buffer is mapped lazily, so they cost neither time nor memory). The
 * reader then points those tensors at their range of the model file instead of at the buffer.
 */

/** Payloads this big or bigger are left in the file (smaller ones are cheaper to read with the rest). */
export const LAZY_MIN_BYTES = 256 << 10;

/** The messages that lead to tensors the reader converts, and the fields that lead there. */
interface Paths {
  /** field number → message walked into, per message. */
  next: Map<MessageDescriptor, Map<number, MessageDescriptor>>;
  tensor: MessageDescriptor;
  rawData: number;
  model: MessageDescriptor;
}

let paths: Paths | null = null;

function fieldsOf(message: string, names: string[]): [MessageDescriptor, Map<number, MessageDescriptor>] {
  const d = descriptor(message);
  const m = new Map<number, MessageDescriptor>();
  for (const name of names) {
    const f = d.fields.find((x) => x.name === name);
    if (!f || f.kind !== 'message' || !f.message) throw new Error(`onnx.proto: ${message}.${name} is not a message field`);
    m.set(f.id, f.message);
  }
  return [d, m];
}

/**
 * Exactly the fields read.ts converts into Tensors (graph initializers, sparse initializers, node
 * attributes, subgraphs): not functions or training info, which the reader keeps as raw messages
 * and writes back as they were (their bytes must be real).
 */
function lazyPaths(): Paths {
  if (paths) return paths;
  const tensor = descriptor('TensorProto');
  const rawData = tensor.fields.find((f) => f.name === 'raw_data')!.id;
  paths = {
    next: new Map([
      fieldsOf('ModelProto', ['graph']),
      fieldsOf('GraphProto', ['node', 'initializer', 'sparse_initializer']),
      fieldsOf('NodeProto', ['attribute']),
      fieldsOf('AttributeProto', ['t', 'g', 'tensors', 'graphs', 'sparse_tensor', 'sparse_tensors']),
      fieldsOf('SparseTensorProto', ['values', 'indices']),
    ]),
    tensor,
    rawData,
    model: descriptor('ModelProto'),
  };
  return paths;
}

/** Reads a file through one small reused window, at any position. */
class Window {
  private buf = Buffer.allocUnsafe(64 << 10);
  private start = 0;
  private end = 0;
  constructor(private fd: number, readonly size: number) {}

  /** The byte at `pos` (the caller keeps pos < size). */
  byte(pos: number): number {
    if (pos < this.start || pos >= this.end) {
      const n = readSync(this.fd, this.buf, 0, Math.min(this.buf.length, this.size - pos), pos);
      if (n <= 0) throw new Malformed();
      this.start = pos;
      this.end = pos + n;
    }
    return this.buf[pos - this.start]!;
  }
}

class Malformed extends Error {}

/** A varint at `at` (up to 64 bits, as a number; lengths beyond 2^53 are malformed anyway): [value, next position]. */
function varint(w: Window, at: number, end: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (at >= end) throw new Malformed();
    const b = w.byte(at++);
    value += (b & 0x7f) * scale;
    if ((b & 0x80) === 0) return [value, at];
    scale *= 128;
  }
  throw new Malformed();
}

/**
 * The big `raw_data` payloads of the file's tensors as [offset, length] in file order, or null when
 * the structure is not what the decoder accepts (the caller then reads the whole file, so errors are
 * reported exactly as before).
 */
export function findLazyPayloads(fd: number, size: number, minBytes = LAZY_MIN_BYTES): [number, number][] | null {
  const p = lazyPaths();
  const w = new Window(fd, size);
  const out: [number, number][] = [];
  const walk = (desc: MessageDescriptor, from: number, end: number, depth: number): void => {
    if (depth > 100) throw new Malformed();
    const next = p.next.get(desc);
    let at = from;
    while (at < end) {
      let tag: number;
      [tag, at] = varint(w, at, end);
      const field = Math.floor(tag / 8);
      if (field === 0 || tag > 0xffffffff) throw new Malformed();
      switch (tag & 7) {
        case WIRE_VARINT: [, at] = varint(w, at, end); break;
        case WIRE_FIXED64: at += 8; break;
        case WIRE_FIXED32: at += 4; break;
        case WIRE_LEN: {
          let len: number;
          [len, at] = varint(w, at, end);
          const stop = at + len;
          if (stop > end) throw new Malformed();
          if (len >= minBytes) {
            if (desc === p.tensor && field === p.rawData) out.push([at, len]);
            else {
              const sub = next?.get(field);
              if (sub) walk(sub, at, stop, depth + 1);
            }
          }
          at = stop;
          break;
        }
        default: throw new Malformed(); // groups (deprecated) and invalid wire types: let the decoder judge
      }
      if (at > end) throw new Malformed();
    }
  };
  try {
    walk(p.model, 0, size, 0);
  } catch (err) {
    if (err instanceof Malformed) return null;
    throw err;
  }
  return out;
}

/**
 * The file's bytes in a buffer of its size, except the big tensor payloads (left zero and never
 * touched), and those payloads; null when there are none worth leaving out.
 */
export function readSkippingPayloads(file: string, size: number, minBytes = LAZY_MIN_BYTES): { bytes: Uint8Array; payloads: Map<number, number> } | null {
  const fd = openSync(file, 'r');
  try {
    const found = findLazyPayloads(fd, size, minBytes);
    if (!found || found.length === 0) return null;
    // new Uint8Array is calloc'd: a big one is fresh zero pages, only touched where written
    const bytes = new Uint8Array(size);
    let at = 0;
    const readRange = (from: number, to: number) => {
      for (let done = from; done < to;) {
        const n = readSync(fd, bytes, done, to - done, done);
        if (n <= 0) throw new Error(`${file}: ended early while reading (the file changed while it was opened?)`);
        done += n;
      }
    };
    for (const [offset, length] of found) {
      readRange(at, offset);
      at = offset + length;
    }
    readRange(at, size);
    return { bytes, payloads: new Map(found) };
  } finally {
    closeSync(fd);
  }
}
