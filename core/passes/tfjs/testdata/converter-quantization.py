"""Golden values for core/passes/tfjs/weight-quantization.test.ts.

Runs the TF.js converter's quantize_weights (tensorflowjs/quantization.py, with its
_get_affine_quantization_range) as it behaves under numpy 1.x, which the converter pins: value-based
casting keeps the element-wise arithmetic in float32, so the float64 scalars are cast to float32
here explicitly (numpy 2 would promote to float64; `differFromFloat64` counts where that matters).
Regenerate with: python3 converter-quantization.py > converter-quantization.json
"""
import json

import numpy as np

rng = np.random.default_rng(7)


def quantize(data, dtype, float32_arithmetic=True):
    qmax = np.iinfo(dtype).max
    lo = data.min().astype(np.float64)
    hi = data.max().astype(np.float64)
    if lo == hi:
        return np.zeros_like(data, dtype=dtype), float(lo), 1.0
    scale = (hi - lo) / qmax
    if lo <= 0 <= hi:
        zero_point = np.round((0 - lo) / scale)
        nudged_min = -zero_point * scale
        nudged_max = qmax * scale + nudged_min
    else:
        nudged_min, nudged_max = lo, hi
    if float32_arithmetic:
        f_min, f_max, f_scale = np.float32(nudged_min), np.float32(nudged_max), np.float32(scale)
        codes = np.round((data.clip(f_min, f_max) - f_min) / f_scale).astype(dtype)
    else:
        codes = np.round((data.astype(np.float64).clip(nudged_min, nudged_max) - nudged_min) / scale).astype(dtype)
    return codes, float(nudged_min), float(scale)


base = rng.normal(0, 0.05, 40).astype(np.float32)
base[0], base[1] = -0.13, 0.11
_, nudged_min, scale = quantize(base, np.uint8)
# values that land on (or next to) half-way points between codes: where rounding rules show
near_ties = (np.float32(nudged_min) + (np.arange(20, 60, 2) + 0.5).astype(np.float32) * np.float32(scale)).astype(np.float32)
data = np.concatenate([base, near_ties]).astype(np.float32)
out = {'values': [float(v) for v in data]}
for dtype in (np.uint8, np.uint16):
    codes, nudged_min, scale = quantize(data, dtype)
    codes64, _, _ = quantize(data, dtype, float32_arithmetic=False)
    out[np.dtype(dtype).name] = {'codes': codes.tolist(), 'min': nudged_min, 'scale': scale, 'differFromFloat64': int((codes != codes64).sum())}
positive = rng.uniform(0.5, 2.0, 16).astype(np.float32)
codes, nudged_min, scale = quantize(positive, np.uint8)
out['positive'] = {'values': [float(v) for v in positive], 'codes': codes.tolist(), 'min': nudged_min, 'scale': scale}
constant = np.full(5, 0.25, np.float32)
codes, nudged_min, scale = quantize(constant, np.uint8)
out['constant'] = {'values': [float(v) for v in constant], 'codes': codes.tolist(), 'min': nudged_min, 'scale': scale}
halves = rng.normal(0, 3, 32).astype(np.float32)
halves[:4] = [65520, -1e-8, 6.1e-5, 1e5]
out['float16'] = {'values': [float(v) for v in halves], 'bits': halves.astype(np.float16).view(np.uint16).tolist()}
print(json.dumps(out))
