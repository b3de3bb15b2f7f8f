// A WebAssembly assembler for the small subset of the text format (WAT) that the project's SIMD
// kernels are written in (quantize-simd.mjs): so a kernel is reviewed as text, next to the code that
// calls it, and no binary blob or toolchain (wabt, clang) is part of the build. Plain JavaScript: worker
// threads load it without a TypeScript loader. Types: wasm-assembler.d.mts.
//
// Accepted: one (module …) holding (memory (export "name") PAGES) and
// (func (export "name") (param $x TYPE)* (result TYPE)? (local $y TYPE)* INSTR*), where every
// instruction is written folded — (op IMMEDIATE* OPERAND*) — or as a bare atom (`nop`, `return`), and
// control flow is (block $label INSTR*), (loop $label INSTR*), (if (result TYPE)? COND (then INSTR*)
// (else INSTR*)?), (br $label), (br_if $label COND). Locals and labels are named, never numbered.
// Anything else is an error naming the token, not a silently different module.

const TYPES = { i32: 0x7f, i64: 0x7e, f32: 0x7d, f64: 0x7c, v128: 0x7b };

/** Plain opcodes (no immediates). */
const SIMPLE = {
  unreachable: [0x00], nop: [0x01], return: [0x0f], drop: [0x1a], select: [0x1b],
  'i32.eqz': [0x45], 'i32.eq': [0x46], 'i32.ne': [0x47], 'i32.lt_s': [0x48], 'i32.lt_u': [0x49], 'i32.gt_s': [0x4a], 'i32.gt_u': [0x4b],
  'i32.le_s': [0x4c], 'i32.le_u': [0x4d], 'i32.ge_s': [0x4e], 'i32.ge_u': [0x4f],
  'f32.eq': [0x5b], 'f32.ne': [0x5c], 'f32.lt': [0x5d], 'f32.gt': [0x5e], 'f32.le': [0x5f], 'f32.ge': [0x60],
  'f64.eq': [0x61], 'f64.ne': [0x62], 'f64.lt': [0x63], 'f64.gt': [0x64], 'f64.le': [0x65], 'f64.ge': [0x66],
  'i32.add': [0x6a], 'i32.sub': [0x6b], 'i32.mul': [0x6c], 'i32.div_u': [0x6e], 'i32.rem_u': [0x70], 'i32.and': [0x71], 'i32.or': [0x72],
  'i32.xor': [0x73], 'i32.shl': [0x74], 'i32.shr_s': [0x75], 'i32.shr_u': [0x76],
  'f64.abs': [0x99], 'f64.neg': [0x9a], 'f64.nearest': [0x9e], 'f64.add': [0xa0], 'f64.sub': [0xa1], 'f64.mul': [0xa2], 'f64.div': [0xa3],
  'f64.min': [0xa4], 'f64.max': [0xa5],
  'f32.demote_f64': [0xb6], 'f64.convert_i32_s': [0xb7], 'f64.promote_f32': [0xbb],
  'i32.trunc_sat_f64_s': [0xfc, 0x02],
};

/** SIMD opcodes (after the 0xfd prefix), by name; lane and memory immediates are handled below. */
const SIMD = {
  'v128.load': 0, 'v128.store': 11, 'v128.load64_zero': 93, 'v128.store8_lane': 88, 'v128.store16_lane': 89,
  'i32x4.splat': 17, 'f32x4.splat': 19, 'f64x2.splat': 20,
  'i32x4.eq': 55, 'i32x4.lt_u': 58, 'i32x4.gt_u': 60, 'i32x4.ge_u': 64,
  'f32x4.eq': 65, 'f32x4.ne': 66, 'f64x2.eq': 71,
  'v128.and': 78, 'v128.andnot': 79, 'v128.or': 80, 'v128.xor': 81, 'v128.bitselect': 82, 'v128.any_true': 83, 'i32x4.all_true': 163,
  'f64x2.promote_low_f32x4': 95, 'i8x16.narrow_i16x8_u': 102, 'f32x4.nearest': 106,
  'i16x8.narrow_i32x4_s': 133, 'i16x8.narrow_i32x4_u': 134,
  'f64x2.nearest': 148, 'i32x4.shl': 171, 'i32x4.shr_u': 173, 'i32x4.add': 174, 'i32x4.sub': 177,
  'f32x4.add': 228, 'f32x4.sub': 229, 'f32x4.mul': 230, 'f32x4.pmin': 234, 'f32x4.pmax': 235,
  'f64x2.add': 240, 'f64x2.sub': 241, 'f64x2.mul': 242, 'f64x2.div': 243, 'f64x2.pmin': 246, 'f64x2.pmax': 247,
  'i32x4.trunc_sat_f32x4_s': 248, 'i32x4.trunc_sat_f64x2_s_zero': 252,
};

/** Natural alignment (log2 bytes) of memory instructions: the alignment written when none is given. */
const MEMORY = {
  'i32.load': [[0x28], 2], 'f32.load': [[0x2a], 2], 'f64.load': [[0x2b], 3], 'i32.load8_u': [[0x2d], 0],
  'i32.store': [[0x36], 2], 'f32.store': [[0x38], 2], 'f64.store': [[0x39], 3], 'i32.store8': [[0x3a], 0],
  'v128.load': [null, 4], 'v128.store': [null, 4], 'v128.load64_zero': [null, 3],
  'v128.store8_lane': [null, 0], 'v128.store16_lane': [null, 1],
};

const unsigned = (n) => {
  const out = [];
  do {
    let byte = n & 0x7f;
    n = Math.floor(n / 128);
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
};

const signed = (n) => {
  const out = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    const done = (n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
};

const utf8 = (s) => [...new TextEncoder().encode(s)];
const name = (s) => [...unsigned(utf8(s).length), ...utf8(s)];
const vector = (items) => [...unsigned(items.length), ...items.flat()];
const section = (id, bytes) => [id, ...unsigned(bytes.length), ...bytes];

/** S-expressions: nested arrays of atoms (strings). Comments `;; …` run to the end of the line. */
function parse(text) {
  const tokens = text.replace(/;;[^\n]*/g, ' ').match(/\(|\)|"[^"]*"|[^\s()]+/g) ?? [];
  let at = 0;
  const read = () => {
    const token = tokens[at++];
    if (token === undefined) throw new Error('wasm assembler: unexpected end of text (a missing ")")');
    if (token === ')') throw new Error(`wasm assembler: unexpected ")" at token ${at}`);
    if (token !== '(') return token;
    const list = [];
    while (tokens[at] !== ')') list.push(read());
    at++;
    return list;
  };
  const module = read();
  if (at !== tokens.length) throw new Error(`wasm assembler: text after the module (token ${at}: ${tokens[at]})`);
  return module;
}

function typeOf(atom, where) {
  const t = TYPES[atom];
  if (t === undefined) throw new Error(`wasm assembler: ${where}: unknown type ${atom}`);
  return t;
}

function float(bytes, atom) {
  const v = atom === 'inf' ? Infinity : atom === '-inf' ? -Infinity : Number(atom);
  if (Number.isNaN(v)) throw new Error(`wasm assembler: not a number: ${atom}`);
  const view = new DataView(new ArrayBuffer(bytes));
  if (bytes === 4) view.setFloat32(0, v, true);
  else view.setFloat64(0, v, true);
  return [...new Uint8Array(view.buffer)];
}

/** One function's code: its signature, locals and body bytes. */
function assembleFunc(form) {
  let exportName = null;
  const params = [];
  const results = [];
  const locals = [];
  const index = new Map();
  const body = [];
  for (const item of form.slice(1)) {
    if (Array.isArray(item) && item[0] === 'export') exportName = JSON.parse(item[1]);
    else if (Array.isArray(item) && (item[0] === 'param' || item[0] === 'local')) {
      const [, id, type] = item;
      if (!id?.startsWith('$') || index.has(id)) throw new Error(`wasm assembler: ${item[0]} ${id}: give every ${item[0]} its own $name`);
      index.set(id, index.size);
      (item[0] === 'param' ? params : locals).push(typeOf(type, id));
    } else if (Array.isArray(item) && item[0] === 'result') results.push(typeOf(item[1], 'result'));
    else body.push(item);
  }
  if (!exportName) throw new Error('wasm assembler: every func is exported: (func (export "name") …)');
  const labels = [];
  const local = (id) => {
    const i = index.get(id);
    if (i === undefined) throw new Error(`wasm assembler: ${exportName}: unknown local ${id}`);
    return unsigned(i);
  };
  const depth = (id) => {
    const i = labels.lastIndexOf(id);
    if (i < 0) throw new Error(`wasm assembler: ${exportName}: unknown label ${id}`);
    return unsigned(labels.length - 1 - i);
  };
  const out = [];
  const emit = (instr) => {
    if (!Array.isArray(instr)) {
      const op = SIMPLE[instr];
      if (!op) throw new Error(`wasm assembler: ${exportName}: unknown instruction ${instr}`);
      out.push(...op);
      return;
    }
    const [op, ...rest] = instr;
    if (op === 'block' || op === 'loop') {
      const label = rest[0]?.startsWith?.('$') ? rest.shift() : null;
      out.push(op === 'block' ? 0x02 : 0x03, 0x40);
      labels.push(label);
      rest.forEach(emit);
      labels.pop();
      out.push(0x0b);
      return;
    }
    if (op === 'if') {
      const result = Array.isArray(rest[0]) && rest[0][0] === 'result' ? typeOf(rest.shift()[1], 'if') : 0x40;
      const then = rest.find((r) => Array.isArray(r) && r[0] === 'then');
      const otherwise = rest.find((r) => Array.isArray(r) && r[0] === 'else');
      rest.filter((r) => r !== then && r !== otherwise).forEach(emit); // the condition
      out.push(0x04, result);
      labels.push(null);
      then?.slice(1).forEach(emit);
      if (otherwise) {
        out.push(0x05);
        otherwise.slice(1).forEach(emit);
      }
      labels.pop();
      out.push(0x0b);
      return;
    }
    if (op === 'br' || op === 'br_if') {
      rest.slice(1).forEach(emit);
      out.push(op === 'br' ? 0x0c : 0x0d, ...depth(rest[0]));
      return;
    }
    if (op === 'local.get' || op === 'local.set' || op === 'local.tee') {
      rest.slice(1).forEach(emit);
      out.push({ 'local.get': 0x20, 'local.set': 0x21, 'local.tee': 0x22 }[op], ...local(rest[0]));
      return;
    }
    if (op === 'i32.const') return void out.push(0x41, ...signed(Number(rest[0]) | 0));
    if (op === 'f32.const') return void out.push(0x43, ...float(4, rest[0]));
    if (op === 'f64.const') return void out.push(0x44, ...float(8, rest[0]));
    // immediates: offset=N align=N (memory), then a lane index (store*_lane)
    const immediates = [];
    while (rest.length && !Array.isArray(rest[0])) immediates.push(rest.shift());
    rest.forEach(emit);
    const memory = MEMORY[op];
    const simd = SIMD[op];
    if (simd === undefined && SIMPLE[op] === undefined && memory === undefined) throw new Error(`wasm assembler: ${exportName}: unknown instruction ${op}`);
    out.push(...(simd !== undefined ? [0xfd, ...unsigned(simd)] : memory?.[0] ?? SIMPLE[op]));
    if (memory) {
      const offset = Number(immediates.find((i) => i.startsWith('offset='))?.slice(7) ?? 0);
      const align = immediates.find((i) => i.startsWith('align='));
      out.push(...unsigned(align ? Math.log2(Number(align.slice(6))) : memory[1]), ...unsigned(offset));
    }
    const lane = immediates.filter((i) => !i.includes('='));
    if (lane.length > (op.endsWith('_lane') ? 1 : 0) || (op.endsWith('_lane') && lane.length !== 1)) throw new Error(`wasm assembler: ${exportName}: ${op}: immediates ${immediates.join(' ')}`);
    if (lane.length) out.push(Number(lane[0]));
  };
  body.forEach(emit);
  // locals run-length coded by type
  const runs = [];
  for (const t of locals) {
    if (runs.length && runs[runs.length - 1][1] === t) runs[runs.length - 1][0]++;
    else runs.push([1, t]);
  }
  const code = [...vector(runs.map(([n, t]) => [...unsigned(n), t])), ...out, 0x0b];
  return { exportName, signature: [0x60, ...vector(params.map((t) => [t])), ...vector(results.map((t) => [t]))], code };
}

/** The module's binary. */
export function assembleWat(text) {
  const module = parse(text);
  if (!Array.isArray(module) || module[0] !== 'module') throw new Error('wasm assembler: the text must be one (module …)');
  let memory = null;
  const funcs = [];
  const exports = []; // in the order the module names them
  for (const item of module.slice(1)) {
    if (item[0] === 'memory') {
      if (memory) throw new Error('wasm assembler: one memory per module');
      const exported = item.find((x) => Array.isArray(x) && x[0] === 'export');
      if (!exported) throw new Error('wasm assembler: the memory is exported: (memory (export "name") PAGES)');
      memory = { pages: Number(item[item.length - 1]) };
      exports.push([...name(JSON.parse(exported[1])), 0x02, 0x00]);
    } else if (item[0] === 'func') {
      const f = assembleFunc(item);
      exports.push([...name(f.exportName), 0x00, ...unsigned(funcs.length)]);
      funcs.push(f);
    } else throw new Error(`wasm assembler: unsupported module field ${item[0]}`);
  }
  const signatures = [];
  const typeIndex = funcs.map((f) => {
    const key = f.signature.join(',');
    let i = signatures.findIndex((s) => s.join(',') === key);
    if (i < 0) i = signatures.push(f.signature) - 1;
    return i;
  });
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vector(signatures)),
    ...section(3, vector(typeIndex.map((i) => unsigned(i)))),
    ...(memory ? section(5, vector([[0x00, ...unsigned(memory.pages)]])) : []),
    ...section(7, vector(exports)),
    ...section(10, vector(funcs.map((f) => [...unsigned(f.code.length), ...f.code]))),
  ]);
}

/** The module's exports, compiled and instantiated with no imports (a CompileError where the engine lacks a feature it uses). */
export function instantiateWat(text) {
  return new WebAssembly.Instance(new WebAssembly.Module(assembleWat(text))).exports;
}

/** Grows a WebAssembly memory to at least `bytes` (views of it made before are then detached). */
export function growMemory(memory, bytes) {
  const missing = bytes - memory.buffer.byteLength;
  if (missing > 0) memory.grow(Math.ceil(missing / 65536));
  return memory.buffer;
}

/**
 * A getter for the exports of `text`, instantiated on first use (once per thread), or null where the
 * engine cannot compile it (WebAssembly.CompileError: no SIMD) and the caller's scalar code runs.
 */
export function lazyModule(text) {
  let exports;
  return () => {
    if (exports === undefined) {
      try {
        exports = instantiateWat(text);
      } catch (e) {
        if (!(e instanceof WebAssembly.CompileError)) throw e;
        exports = null;
      }
    }
    return exports;
  };
}
