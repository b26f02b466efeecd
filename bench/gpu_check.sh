#!/usr/bin/env bash
# benchd GPU check, for a machine with an NVIDIA GPU. Run from anywhere; it works in the repo root.
#
#   1. creates a virtualenv ($TMPDIR/benchd-gpu-check-venv, or $BENCHD_CHECK_VENV), installs torch (PyPI's default CUDA
#      build) unless it is already importable, and the project with its dev extras;
#   2. runs the tests marked gpu (they skip, with the reason, only when NVML cannot start);
#   3. benchmarks a ResNet-50-sized CNN (plain torch, random weights) single-stream and offline on cuda:0
#      with energy and telemetry sampled by benchd's parent-side sampler, and prints per scenario:
#      harness time vs CUDA-event time per query, and energy from the NVML counter vs integrated power
#      over the same window; then the same model through benchd.evaluate.
#
# Budget: under 8 minutes including the install: every step's timeout is cut to what is left of
# BENCHD_CHECK_BUDGET_S (default 470 s), so the script ends in time even when a step hangs.
# Environment: BENCHD_CHECK_VENV (venv path), PYTHON (interpreter for the venv, default python3),
#   TORCH_SPEC (pip requirement for torch, default "torch"), PIP_INDEX_URL etc. as usual for pip,
#   BENCHD_CHECK_SECONDS (measured seconds per scenario, default 6).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
started=$(date +%s)
venv=${BENCHD_CHECK_VENV:-${TMPDIR:-/tmp}/benchd-gpu-check-venv}
budget_s=${BENCHD_CHECK_BUDGET_S:-470}
python=${PYTHON:-python3}
seconds=${BENCHD_CHECK_SECONDS:-6}
status=0

step() { printf '\n=== [%3ss] %s\n' "$(( $(date +%s) - started ))" "$*"; }

# limit STEP_MAX_S: a timeout of at most STEP_MAX_S seconds and never past the overall budget
limit() {
    local left=$(( budget_s - ($(date +%s) - started) ))
    if (( left < 5 )); then left=5; fi
    if (( left < $1 )); then echo "$left"; else echo "$1"; fi
}

step "GPU"
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=index,name,uuid,driver_version,power.limit,temperature.gpu,clocks.sm \
        --format=csv || true
else
    echo "nvidia-smi not found (the NVML checks below say whether the driver is usable)"
fi

step "virtualenv $venv"
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
vpy="$venv/bin/python"
export PIP_DISABLE_PIP_VERSION_CHECK=1

step "install torch"
if "$vpy" -c 'import torch' >/dev/null 2>&1; then
    echo "torch already installed"
else
    timeout "$(limit 300)" "$vpy" -m pip install --quiet "${TORCH_SPEC:-torch}"
fi
"$vpy" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda, "available", torch.cuda.is_available())'

step "install benchd (editable, dev extras)"
timeout "$(limit 150)" "$vpy" -m pip install --quiet -e '.[dev]'

step "tests marked gpu"
if ! timeout "$(limit 120)" "$vpy" -m pytest -m gpu -q -rs -p no:cacheprovider; then
    echo "gpu tests FAILED"
    status=1
fi

step "ResNet-50-sized CNN on cuda:0: single-stream and offline, energy and telemetry"
if ! timeout "$(limit 240)" "$vpy" bench/gpu_check.py --seconds "$seconds"; then
    echo "GPU benchmark FAILED"
    status=1
fi

step "done (exit status $status)"
exit "$status"
