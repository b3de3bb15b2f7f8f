import { WhittleError } from '../../../api/errors.ts';
import { describeTopology, weightBytes, type TfjsModel } from '../../../native-models/formats/tfjs/index.ts';
import type { PassContext, PassReport } from '../pass.ts';
import { allFinite, exclusionMatcher, type TfjsPass } from './pass.ts';
import { storeQuantized } from './weight-quantization.ts';

export type TfjsQuantizeDtype = 'uint8' | 'uint16' | 'float16';

export interface TfjsQuantizeOptions {
  dtype: TfjsQuantizeDtype;
  /** Weight names, layer/node names or layer classes/op types to keep as they are. */
  exclude?: readonly string[] | undefined;
}

/** Said with every TF.js quantization: it is a storage format, not a compute format. */
export const TFJS_DEQUANTIZE_NOTE =
  'TF.js dequantizes quantized weights to float32 when it loads the model: this saves download and ' +
  'storage size, not inference time or memory.';

/**
 * TF.js weight quantization (`--quantize_uint8`, `--quantize_uint16`, `--quantize_float16` of the
 * converter): every float32 weight is stored as uint8/uint16 codes with a per-tensor min and scale,
 * or as IEEE half. int32, bool and string weights stay as they are, as the converter leaves them.
 * A weight that is already quantized is re-quantized from the values TF.js would load.
 */
export const tfjsQuantizePass: TfjsPass<TfjsQuantizeOptions> = {
  name: 'tfjs-quantize',
  async run(model: TfjsModel, options: TfjsQuantizeOptions, ctx: PassContext): Promise<PassReport> {
    const { dtype } = options;
    if (dtype !== 'uint8' && dtype !== 'uint16' && dtype !== 'float16') {
      throw new WhittleError('BAD_USAGE', `${this.name}: dtype must be uint8, uint16 or float16, got ${String(dtype)}`);
    }
    const uses = describeTopology(model).uses;
    const isExcluded = exclusionMatcher(uses, options.exclude, ctx);
    const bytesBefore = weightBytes(model);
    const warnings = [TFJS_DEQUANTIZE_NOTE];
    const excluded: string[] = [];
    const requantized: Record<string, number> = {};
    let changed = 0;
    let maxAbsError = 0;
    let sumSquaredError = 0;
    let sumSquaredSignal = 0;
    for (let i = 0; i < uses.length; i++) {
      ctx.checkpoint();
      ctx.progress('quantize', i, uses.length);
      const use = uses[i]!;
      const w = use.weight;
      if (!w.isFloat) continue;
      if (isExcluded(use)) {
        excluded.push(w.name);
        continue;
      }
      const values = w.toFloat32();
      if (!allFinite(values)) {
        const message = `${w.name}: holds NaN or Infinity, so it has no quantization range; left as it is`;
        warnings.push(message);
        ctx.warn(message);
        excluded.push(w.name);
        continue;
      }
      if (w.quantization) requantized[w.quantization.dtype] = (requantized[w.quantization.dtype] ?? 0) + 1;
      storeQuantized(w, values, dtype);
      const after = w.toFloat32();
      for (let k = 0; k < values.length; k++) {
        const e = after[k]! - values[k]!;
        if (Math.abs(e) > maxAbsError) maxAbsError = Math.abs(e);
        sumSquaredError += e * e;
        sumSquaredSignal += values[k]! * values[k]!;
      }
      changed++;
    }
    ctx.progress('quantize', uses.length, uses.length);
    const already = Object.entries(requantized).map(([d, n]) => `${n} ${d}`).join(', ');
    if (already) {
      const message = `${already} weight(s) were already quantized; they were re-quantized from the values TF.js loads, which cannot restore precision lost before`;
      warnings.push(message);
      ctx.warn(message);
    }
    return {
      pass: this.name,
      nodesChanged: changed,
      bytesBefore,
      bytesAfter: weightBytes(model),
      excluded,
      warnings,
      details: {
        dtype,
        weights: changed,
        maxAbsError,
        // weight-space SQNR over every quantized weight together (not the model output's)
        weightSqnrDb: sumSquaredError > 0 ? 10 * Math.log10(sumSquaredSignal / sumSquaredError) : null,
        requantized,
      },
    };
  },
};
