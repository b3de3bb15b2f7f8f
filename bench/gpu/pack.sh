#!/usr/bin/env bash
# Packs what bench/gpu/device-check.sh needs on the GPU machine into .device/ (git-ignored), under
# the device tool's 64 MiB: Node, the Vulkan/GL loader packages (../shared/device/pack.sh), the
# node_modules the engine loads at run time (bench/gpu/runtime-deps.mjs; no TF.js, Electron or
# build tools) and the SqueezeNet fixture (../shared does not travel) in .device-data/.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
grep -qx '/.device-data/' .git/info/exclude 2>/dev/null || echo '/.device-data/' >> .git/info/exclude
mkdir -p .device-data
cp -f ../shared/fixtures/squeezenet/squeezenet1.0_fp32.onnx .device-data/ 2>/dev/null || echo "no SqueezeNet fixture beside the checkout: the check will skip it" >&2
# shellcheck disable=SC2046
../shared/device/pack.sh $(node bench/gpu/runtime-deps.mjs) .device-data
