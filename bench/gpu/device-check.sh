#!/usr/bin/env bash
# The GPU check of issue 6 (bench/gpu/device-check.ts) as one command, sized to end within 5 minutes
# on the device machine (H200); prints times, ratios and agreement, and keeps a log and a JSON.
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
exit "${PIPESTATUS[0]}"
