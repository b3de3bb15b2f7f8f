#!/usr/bin/env bash
# The GPU check of issue 6 (bench/gpu/device-check.ts) as one command, sized to end within 5 minutes
# on the device machine (H200); prints times, ratios and agreement, and keeps a log and a JSON. Then,
# where Python has onnxruntime (the device machine), issue 3's whittle-vs-quantize_dynamic seconds on
# the generated MLP (bench/device/quantize-vs-ort.sh, mlp section, ≤ 200 s): one machine start for both.
#
# Here (smoke: small sizes; the GPU halves say why they are skipped when there is no adapter):
#   bash bench/gpu/device-check.sh --small
# On the device machine (docs/gpu.md): pack once here with `bash bench/gpu/pack.sh`, then run with
# carry [".device"] the command:
#   bash .device/run.sh bash bench/gpu/device-check.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-${TMPDIR:-/tmp}}
mkdir -p "$out"
command -v vulkaninfo >/dev/null && vulkaninfo --summary 2>/dev/null | grep -E 'deviceName|driverName|apiVersion' | head -6
timeout 290 node --import tsx bench/gpu/device-check.ts --json "$out/device-check.json" "$@" 2>&1 | tee "$out/device-check.log"
status=${PIPESTATUS[0]}
# issue 3 on the same machine start: whittle against onnxruntime's own quantize_dynamic on the
# generated 64 M-parameter MLP (the device's Python has onnxruntime; this bundle needs no fixtures)
if [[ " $* " != *" --small "* ]]; then
  if python3 -c 'import onnxruntime.quantization' 2>/dev/null; then
    echo; echo "== whittle vs onnxruntime quantize_dynamic, 64 M-parameter MLP (bench/device/quantize-vs-ort.sh)"
    SECTIONS=mlp timeout 200 bash bench/device/quantize-vs-ort.sh 2>&1 | tee "$out/quantize-vs-ort.log"
  else
    echo "no Python onnxruntime here: whittle vs quantize_dynamic skipped"
  fi
fi
exit "$status"
