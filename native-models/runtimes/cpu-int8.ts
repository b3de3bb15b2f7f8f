import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';

/**
 * Whether onnxruntime's int8 CPU kernels can saturate on this machine. On x86-64 without VNNI (AVX2,
 * and AVX-512 before VNNI) MLAS multiplies uint8 activations by int8 weights with vpmaddubsw, which
 * adds two products in a saturating int16: 2·255·127 = 64,770 does not fit, so QLinearConv,
 * QLinearMatMul and DynamicQuantizeMatMul sums go wrong wherever two large products meet (int8
 * activations are shifted to uint8 first, so they meet the same instruction). onnxruntime's own
 * quantizer answers with reduce_range: weights in 7 bits, 2·255·64 = 32,640. With VNNI (vpdpbusd
 * accumulates in int32), on ARM (sdot/udot or widening) and for uint8 weights (widened to int16)
 * nothing saturates.
 *
 * Measured on a 2-core AMD EPYC with AVX2 and no VNNI: SqueezeNet static int8 per-channel MSE kept
 * 78 % top-1 agreement with fp32 (8.4 dB) in 8-bit weights and 95 % (22.0 dB) in 7-bit; the same
 * 8-bit file keeps 96 % (23.4 dB) on a CPU with AVX512-VNNI.
 */
export interface Int8Saturation {
  saturates: boolean;
  /** The CPU, as the OS names it. */
  cpu: string;
  /** Why, in a few words ("x86-64 with AVX2, no VNNI"). */
  detail: string;
}

/** WHITTLE_INT8_SATURATES=1|0 overrides the detection (tests take both paths on any machine). */
const OVERRIDE = 'WHITTLE_INT8_SATURATES';

let cached: Int8Saturation | null = null;

export function int8Saturation(): Int8Saturation {
  const forced = process.env[OVERRIDE];
  const cpu = cpus()[0]?.model.trim() || 'unknown CPU';
  if (forced === '1' || forced === '0') return { saturates: forced === '1', cpu, detail: `${OVERRIDE}=${forced}` };
  cached ??= detect(cpu);
  return cached;
}

/**
 * Whether int8 weights stored in all 8 bits (no reduce range) meet saturating kernels here: then the
 * fused model does not compute what the model says, and anything measuring the model must run it
 * unfused (UNFUSED_SESSION).
 */
export function eightBitWeightsSaturate(reduceRange: boolean): boolean {
  return !reduceRange && int8Saturation().saturates;
}

/**
 * onnxruntime session options under which a QDQ model runs its own arithmetic: graph optimizations
 * off, so DequantizeLinear → float op → QuantizeLinear instead of the fused integer kernels.
 */
export const UNFUSED_SESSION = { graphOptimizationLevel: 'disabled' } as const;

function detect(cpu: string): Int8Saturation {
  if (process.arch !== 'x64') return { saturates: false, cpu, detail: `${process.arch}: no saturating int8 kernels` };
  const flags = cpuFlags();
  if (flags === null) return { saturates: false, cpu, detail: 'x86-64, CPU features unreadable here: assumed VNNI' };
  return saturationFromFlags(cpu, flags);
}

/** From the CPU's feature flags (lower case, /proc/cpuinfo spelling). */
export function saturationFromFlags(cpu: string, flags: ReadonlySet<string>): Int8Saturation {
  const vnni = ['avx512_vnni', 'avx_vnni', 'amx_int8'].find((f) => flags.has(f));
  if (vnni) return { saturates: false, cpu, detail: `x86-64 with ${vnni.toUpperCase().replace('_', '-')}` };
  const simd = flags.has('avx512bw') ? 'AVX-512' : flags.has('avx2') ? 'AVX2' : 'SSE';
  return { saturates: true, cpu, detail: `x86-64 with ${simd}, no VNNI` };
}

function cpuFlags(): Set<string> | null {
  try {
    if (process.platform === 'linux') {
      const line = /^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1];
      return line ? new Set(line.trim().split(/\s+/)) : null;
    }
    if (process.platform === 'darwin') {
      const text = execFileSync('sysctl', ['-n', 'machdep.cpu.features', 'machdep.cpu.leaf7_features'], { encoding: 'utf8', timeout: 2000 });
      // macOS spells them AVX2, AVX512VNNI, AVX512BW
      const mac = new Set(text.toUpperCase().split(/\s+/));
      const out = new Set<string>();
      if (mac.has('AVX2')) out.add('avx2');
      if (mac.has('AVX512BW')) out.add('avx512bw');
      if (mac.has('AVX512VNNI')) out.add('avx512_vnni');
      return out;
    }
  } catch {
    return null;
  }
  return null;
}
