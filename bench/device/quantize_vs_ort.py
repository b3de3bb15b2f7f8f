"""Whittle against onnxruntime's Python quantizer: seconds and accuracy side by side.

Run by bench/device/quantize-vs-ort.sh on the device machine (read its header first: the fixtures
must be copied into .device/fixtures before the machine is asked for, since ../shared does not
travel). NOT RUN ON THE DEVICE YET (it ran end to end on a 2-core CPU box with onnxruntime 1.30.0
from pip). Both tools' outputs are evaluated by the same onnxruntime code
here, on the CPU EP, so accuracies compare like with like. Whittle is timed twice: the wall time of
its process (Node start and TypeScript loading included) and the `seconds` it reports itself.
"""
import argparse
import contextlib
import gzip
import io
import json
import os
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quantize_dynamic, quantize_static)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CALIBRATIONS = [('minmax', CalibrationMethod.MinMax), ('percentile', CalibrationMethod.Percentile), ('entropy', CalibrationMethod.Entropy)]
ROWS = []


def whittle(*args):
    """`node bin/whittle.mjs quantize ...`: (wall seconds, its JSON report)."""
    t = time.perf_counter()
    r = subprocess.run(['node', 'bin/whittle.mjs', 'quantize', *args, '--json', '--no-record'], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        raise RuntimeError(f'whittle quantize {" ".join(args)} failed ({r.returncode}): {r.stderr.strip()}')
    return wall, json.loads(r.stdout)


def timed(fn):
    """Seconds fn takes; what onnxruntime's quantizer prints meanwhile is dropped (the output tail is short)."""
    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        fn()
    return time.perf_counter() - t


class Reader(CalibrationDataReader):
    """Feeds one sample at a time (both models take batch 1)."""

    def __init__(self, name, samples):
        self.name, self.samples, self.i = name, samples, 0

    def get_next(self):
        if self.i >= len(self.samples):
            return None
        self.i += 1
        return {self.name: self.samples[self.i - 1]}

    def rewind(self):
        self.i = 0


def predictions(path, name, samples):
    s = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    return np.array([int(np.argmax(s.run(None, {name: x})[0])) for x in samples])


def row(section, config, tool, seconds, preds=None, labels=None, reference=None, size=None, extra=''):
    r = {'section': section, 'config': config, 'tool': tool, 'seconds': seconds, 'bytes': size}
    if preds is not None:
        r['top1'] = float(np.mean(preds == labels))
        r['agreement'] = float(np.mean(preds == reference)) if reference is not None else None
    ROWS.append(r)
    acc = f"top-1 {100 * r['top1']:6.2f} %  agreement {100 * r['agreement']:6.2f} %" if preds is not None else ''
    print(f"{section:10} {config:30} {tool:8} {seconds:8.2f} s  {acc}  {'' if size is None else f'{size:>10,} B'} {extra}", flush=True)


# ------------------------------------------------------------------ 1. the generated MLP: dynamic

def mlp_section(mlp, work):
    print(f'\n64 M-parameter MLP ({os.path.getsize(mlp):,} B), dynamic int8', flush=True)
    for per_channel in (False, True):
        config = 'dynamic ' + ('per-channel' if per_channel else 'per-tensor')
        out = os.path.join(work, 'mlp-ort.onnx')
        s = timed(lambda: quantize_dynamic(mlp, out, weight_type=QuantType.QInt8, per_channel=per_channel))
        row('mlp', config, 'ort', s, size=os.path.getsize(out))
        out = os.path.join(work, 'mlp-whittle.onnx')
        wall, rep = whittle(mlp, '-o', out, '--method', 'dynamic', *(['--per-channel'] if per_channel else []))
        row('mlp', config, 'whittle', wall, size=rep['bytesAfter'], extra=f"(own {rep['seconds']:.2f} s, peak RSS {rep['peakRssBytes'] / 2 ** 20:.0f} MiB)")
        print(f'  onnxruntime ÷ whittle: {s / wall:.1f}× (process wall time), {s / rep["seconds"]:.1f}× (whittle\'s own seconds)', flush=True)


# ------------------------------------------------------------------ 2. MNIST

def idx(path):
    with gzip.open(path, 'rb') as f:
        data = f.read()
    magic, n = int.from_bytes(data[0:4], 'big'), int.from_bytes(data[4:8], 'big')
    if magic == 0x803:
        rows, cols = int.from_bytes(data[8:12], 'big'), int.from_bytes(data[12:16], 'big')
        return np.frombuffer(data, np.uint8, n * rows * cols, 16).reshape(n, rows, cols)
    return np.frombuffer(data, np.uint8, n, 8)


def at_opset_13(path, work):
    """onnxruntime's quantizer writes per-channel DequantizeLinear (axis) without raising an older
    model's opset to 13, where axis exists, and the result does not load: give it a converted copy.
    (Whittle raises the opset itself and gets the original.)"""
    import onnx
    from onnx import version_converter
    model = onnx.load(path)
    if next(o.version for o in model.opset_import if o.domain in ('', 'ai.onnx')) >= 13:
        return path
    out = os.path.join(work, os.path.basename(path).replace('.onnx', '-opset13.onnx'))
    onnx.save(version_converter.convert_version(model, 13), out)
    return out


def static_grid(section, fp32, name, calib, test, labels, whittle_calib, work):
    """quantize_static and whittle --method static for each calibrator × granularity, evaluated alike."""
    reference = predictions(fp32, name, test)
    fp32_13 = at_opset_13(fp32, work)
    row(section, 'fp32', '-', 0.0, predictions(fp32, name, test), labels, reference, os.path.getsize(fp32))
    for label, method in CALIBRATIONS:
        for per_channel in (False, True):
            config = f"static {label} {'per-channel' if per_channel else 'per-tensor'}"
            out = os.path.join(work, f'{section}-ort.onnx')
            s = timed(lambda: quantize_static(fp32_13 if per_channel else fp32, out, Reader(name, calib), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                                              activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=method))
            row(section, config, 'ort', s, predictions(out, name, test), labels, reference, os.path.getsize(out))
            out = os.path.join(work, f'{section}-whittle.onnx')
            wall, rep = whittle(fp32, '-o', out, '--method', 'static', '--calibration', label, *whittle_calib, *(['--per-channel'] if per_channel else []))
            row(section, config, 'whittle', wall, predictions(out, name, test), labels, reference, rep['bytesAfter'], f"(own {rep['seconds']:.2f} s)")
    return reference


def mnist_section(fix, work):
    print('\nMNIST: calibrated on test images 0..255, evaluated on 256..9999 (pixels / 255)', flush=True)
    fp32 = os.path.join(fix, 'mnist', 'mnist.onnx')
    images = idx(os.path.join(fix, 'mnist', 't10k-images-idx3-ubyte.gz'))
    labels = idx(os.path.join(fix, 'mnist', 't10k-labels-idx1-ubyte.gz')).astype(np.int64)
    x = (images.astype(np.float32) / 255).reshape(-1, 1, 1, 28, 28)
    calib, test, test_labels = list(x[:256]), list(x[256:]), labels[256:]
    idx_path = os.path.join(fix, 'mnist', 't10k-images-idx3-ubyte.gz')
    reference = static_grid('mnist', fp32, 'Input3', calib, test, test_labels, ['--calib', idx_path, '--preprocess', 'mnist', '--samples', '256'], work)
    # dynamic: onnxruntime's default quantizes Conv too (ConvInteger); whittle does so with --include-conv
    out = os.path.join(work, 'mnist-ort.onnx')
    s = timed(lambda: quantize_dynamic(fp32, out, weight_type=QuantType.QInt8))
    row('mnist', 'dynamic (Conv too)', 'ort', s, predictions(out, 'Input3', test), test_labels, reference, os.path.getsize(out))
    out = os.path.join(work, 'mnist-whittle.onnx')
    wall, rep = whittle(fp32, '-o', out, '--method', 'dynamic', '--include-conv')
    row('mnist', 'dynamic (Conv too)', 'whittle', wall, predictions(out, 'Input3', test), test_labels, reference, rep['bytesAfter'], f"(own {rep['seconds']:.2f} s)")


# ------------------------------------------------------------------ 3. SqueezeNet on imagenet-100

def squeezenet_section(fix, work):
    print('\nSqueezeNet 1.0 fp32: calibrated and evaluated on the 100 imagenet-100 photos (caffe: BGR, 0-255 minus 104/117/123)', flush=True)
    fp32 = os.path.join(fix, 'squeezenet', 'squeezenet1.0_fp32.onnx')
    folder = os.path.join(fix, 'imagenet-100')
    with open(os.path.join(folder, 'images.json')) as f:
        meta = json.load(f)
    rgb = np.fromfile(os.path.join(folder, 'images.u8'), np.uint8).reshape(meta['shape'])  # NHWC, RGB
    bgr = rgb[..., ::-1].astype(np.float32) - np.array([104, 117, 123], np.float32)
    x = list(np.ascontiguousarray(bgr.transpose(0, 3, 1, 2)).reshape(-1, 1, 3, 224, 224))
    labels = np.array([e['label'] for e in json.load(open(os.path.join(folder, 'labels.json')))], np.int64)
    static_grid('squeezenet', fp32, 'data_0', x, x, labels, ['--calib', folder, '--preprocess', 'caffe', '--samples', '100'], work)


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--fixtures', help='the fixtures folder (mnist and squeezenet sections)')
    p.add_argument('--work', required=True)
    p.add_argument('--mlp', required=True)
    p.add_argument('--sections', default='mlp,mnist,squeezenet')
    p.add_argument('--json-out')
    a = p.parse_args()
    sections = a.sections.split(',')
    if not a.fixtures and ('mnist' in sections or 'squeezenet' in sections):
        p.error('--fixtures is needed for the mnist and squeezenet sections')
    print(f'onnxruntime {ort.__version__}, {os.cpu_count()} CPUs; seconds: onnxruntime = the quantize_* call; whittle = its process', flush=True)
    print(f"{'section':10} {'config':30} {'tool':8} {'seconds':>8}", flush=True)
    t = time.perf_counter()
    try:
        if 'mlp' in sections:
            mlp_section(a.mlp, a.work)
        if 'mnist' in sections:
            mnist_section(a.fixtures, a.work)
        if 'squeezenet' in sections:
            squeezenet_section(a.fixtures, a.work)
    finally:
        doc = {'bench': 'quantize-vs-ort', 'onnxruntime': ort.__version__, 'cpus': os.cpu_count(), 'seconds': time.perf_counter() - t, 'rows': ROWS}
        if a.json_out:  # comes back from the device as a file; the printed tables stay in the output tail
            with open(a.json_out, 'w') as f:
                json.dump(doc, f)
        else:
            print(json.dumps(doc), flush=True)


if __name__ == '__main__':
    sys.exit(main())
