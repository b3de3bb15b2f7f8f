"""onnxruntime's Python quantizer on SqueezeNet 1.0: writes its static QDQ models (uint8 activations,
int8 weights; MinMax, Percentile, Entropy with its defaults; per-tensor and per-channel) calibrated on
the 100 imagenet-100 photos exactly as quantize_vs_ort.py does, so that bench/compare-squeezenet.ts
can put them beside Whittle's on the same photos and views, and time them in the same process.

Needs Python with onnxruntime and onnx (not part of Whittle; any machine where pip reaches PyPI):
  python3 -m venv /tmp/ortvenv && /tmp/ortvenv/bin/pip install onnxruntime==1.30.0 onnx==1.23.1
  /tmp/ortvenv/bin/python3 bench/device/ort_squeezenet_models.py --out /tmp/ortq [--fixtures ../shared/fixtures]
"""
import argparse
import json
import os
import sys

import numpy as np
from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from quantize_vs_ort import CALIBRATIONS, Reader, at_opset_13, timed  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--out', required=True)
    p.add_argument('--fixtures', default=os.path.join('..', 'shared', 'fixtures'))
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    fp32 = os.path.join(a.fixtures, 'squeezenet', 'squeezenet1.0_fp32.onnx')
    folder = os.path.join(a.fixtures, 'imagenet-100')
    with open(os.path.join(folder, 'images.json')) as f:
        meta = json.load(f)
    rgb = np.fromfile(os.path.join(folder, 'images.u8'), np.uint8).reshape(meta['shape'])  # NHWC, RGB
    bgr = rgb[..., ::-1].astype(np.float32) - np.array([104, 117, 123], np.float32)  # caffe
    photos = list(np.ascontiguousarray(bgr.transpose(0, 3, 1, 2)).reshape(-1, 1, 3, 224, 224))
    fp32_13 = at_opset_13(fp32, a.out)
    for label, method in CALIBRATIONS:
        for per_channel in (False, True):
            out = os.path.join(a.out, f"ort-{label}-{'pc' if per_channel else 'pt'}.onnx")
            s = timed(lambda: quantize_static(fp32_13 if per_channel else fp32, out, Reader('data_0', photos), quant_format=QuantFormat.QDQ,
                                              per_channel=per_channel, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                              calibrate_method=method))
            print(f'{out}: {s:.1f} s, {os.path.getsize(out):,} B', flush=True)


if __name__ == '__main__':
    sys.exit(main())
