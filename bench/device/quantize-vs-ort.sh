#!/usr/bin/env bash
# Whittle against onnxruntime's own Python quantizer, on the device machine (issue 3 item 9:
# "Whittle is ≥ 10× faster than onnxruntime's quantize_dynamic on the same model"; accuracy side
# by side). NOT RUN ON THE DEVICE MACHINE YET: this task had none. What was checked without it:
# quantize_vs_ort.py ran end to end on a 2-core CPU box (onnxruntime 1.30.0 and onnx 1.23.1 from pip
# in a scratch venv, fixtures read in place), and Whittle ran from a copy of the checkout holding
# only the node_modules paths `prepare` selects. Not checked: pack.sh itself, the 64 MiB total with
# the GL packages, and the run on the machine. Fix what the first real run finds. Its 2-core figures
# (quantize_dynamic 13.5× / 12.1× slower than the whole whittle process on the MLP; MNIST side by
# side) are in the README; SqueezeNet's comparison there is bench/compare-squeezenet.ts's, on 2,000 views.
#
# What it runs (bench/device/quantize_vs_ort.py does the work and prints the tables):
#   1. the same generated 64 M-parameter MLP as bench/quantize-speed.ts (4 × 4096², inline, same
#      generator and seed): onnxruntime quantize_dynamic (per-tensor, per-channel) against
#      `node bin/whittle.mjs quantize --method dynamic [--per-channel]`, seconds side by side;
#   2. MNIST: quantize_static (QDQ, uint8 activations, int8 weights; MinMax / Percentile / Entropy,
#      per-tensor and per-channel) with a CalibrationDataReader over the first 256 test images,
#      against `whittle quantize --method static` on the same images; both evaluated by the same
#      onnxruntime code on the other 9,744 (top-1, agreement with fp32); and dynamic int8;
#   3. SqueezeNet 1.0 fp32: the same static grid calibrated on imagenet-100 (caffe preprocessing),
#      evaluated on the same 100 photos (in-sample: top-1 and agreement with fp32).
#
# The device machine receives only this checkout: ../shared (the fixtures, the packing scripts)
# does not travel, and it has Python with onnxruntime 1.30 but no Node. So, HERE, first:
#   bench/device/quantize-vs-ort.sh prepare
# which runs ../shared/device/pack.sh with the runtime packages Whittle needs (writes .device/:
# Node, the GL loaders, an xz bundle of node_modules) and then packs the fixtures this bench reads
# into .device/fixtures.tar.xz (pack.sh empties .device/ first, so this must come after it). All of
# it must stay under the device tool's 64 MiB: measured here, Node 24 MB + node_modules about 17 MB
# + fixtures about 14 MB (xz), hence better-sqlite3 without its sources and install-time packages,
# and no webgpu (the quantize path never loads it). Then run
# on the device with carry [".device"] and the command
#   bash .device/run.sh bash bench/device/quantize-vs-ort.sh
# (timeout_s 540; it prints each row as it finishes, so a run cut short still shows what it did;
# `SECTIONS=mlp,mnist bash .device/run.sh bash bench/device/quantize-vs-ort.sh` runs fewer).
set -euo pipefail
cd "$(git rev-parse --show-toplevel 2>/dev/null || (cd "$(dirname "$0")/../.." && pwd))"

if [ "${1:-}" = prepare ]; then
  # the runtime dependency closure of package.json, minus webgpu; better-sqlite3 only as it runs
  mapfile -t paths < <(node -e '
    const fs = require("fs"), path = require("path");
    const TRIM = { "better-sqlite3": { files: ["package.json", "lib", "build/Release/better_sqlite3.node"], deps: ["bindings"] } };
    const seen = new Set(), out = [];
    const visit = (name) => {
      if (seen.has(name) || name === "webgpu") return;
      seen.add(name);
      const dir = path.join("node_modules", name);
      if (!fs.existsSync(dir)) return; // an optional dependency for another platform
      const pkg = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"));
      const trim = TRIM[name];
      out.push(...(trim ? trim.files.map((f) => path.join(dir, f)) : [dir]));
      for (const d of trim ? trim.deps : Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies })) visit(d);
    };
    for (const d of Object.keys(require("./package.json").dependencies)) visit(d);
    console.log(out.join("\n"));')
  ../shared/device/pack.sh "${paths[@]}"
  tar -cJf .device/fixtures.tar.xz -C ../shared/fixtures mnist/mnist.onnx mnist/t10k-images-idx3-ubyte.gz mnist/t10k-labels-idx1-ubyte.gz \
    imagenet-100/images.u8 imagenet-100/images.json imagenet-100/labels.json squeezenet/squeezenet1.0_fp32.onnx
  du -sh .device .device/*
  echo 'now: device run, carry [".device"], command: bash .device/run.sh bash bench/device/quantize-vs-ort.sh'
  exit 0
fi

# on the device machine (inside .device/run.sh: node is on PATH, node_modules unpacked)
sections=${SECTIONS:-mlp,mnist,squeezenet}
# the MLP is generated there: only the fixture sections need the tarball (bench/gpu/pack.sh's
# bundle has none, and device-check.sh runs the mlp section with it)
needs_fixtures=$([[ $sections == *mnist* || $sections == *squeezenet* ]] && echo 1 || true)
[ -z "$needs_fixtures" ] || [ -f .device/fixtures.tar.xz ] || { echo "no .device/fixtures.tar.xz: run 'bench/device/quantize-vs-ort.sh prepare' here first" >&2; exit 2; }
command -v node >/dev/null || { echo "no node on PATH: run through .device/run.sh" >&2; exit 2; }
export PYTHONUNBUFFERED=1
work=$(mktemp -d /tmp/whittle-vs-ort-XXXXXX)
export WHITTLE_HOME="$work/home"
trap 'rm -rf "$work"' EXIT
fixture_args=()
if [ -n "$needs_fixtures" ]; then
  mkdir -p "$work/fixtures" && tar -xJf .device/fixtures.tar.xz -C "$work/fixtures"
  fixture_args=(--fixtures "$work/fixtures")
fi
python3 -c 'import onnxruntime, onnx, numpy; print("onnxruntime", onnxruntime.__version__, "onnx", onnx.__version__, "numpy", numpy.__version__)'
node --version
echo "cpus: $(nproc)"
# the same model as bench/quantize-speed.ts's "small" one
node --import tsx bench/quantize-speed.ts --phase generate --dir "$work" --layers 4 --file mlp.onnx >/dev/null
python3 bench/device/quantize_vs_ort.py "${fixture_args[@]}" --work "$work" --mlp "$work/mlp.onnx" \
  --sections "$sections" ${OUT:+--json-out "$OUT/quantize-vs-ort.json"}
