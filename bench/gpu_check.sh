#!/usr/bin/env bash
# benchd GPU check, for a machine with an NVIDIA GPU. Run from anywhere; it works in the repo root.
#
#   1. says whether this host has an NVIDIA GPU at all (a /dev/nvidia* node or the NVML library), the
#      same rule the gpu tests use (tests/gpu.py);
#   2. creates a virtualenv ($TMPDIR/benchd-gpu-check-venv, or $BENCHD_CHECK_VENV), installs torch unless
#      it is importable (the README's CUDA build: $TORCH_SPEC from $TORCH_INDEX_URL), then the project
#      with its test extras, so the whole suite collects and runs;
#   3. runs the tests marked gpu: they skip (with the reason) only where there is no NVIDIA GPU at all,
#      and fail where one is present but NVML, the driver or torch's CUDA cannot use it;
#   4. on a GPU host, checks torch is a CUDA build that sees the GPU, then benchmarks a ResNet-50-sized
#      CNN on cuda:0 (bench/gpu_check.py: harness vs CUDA-event time, NVML counter vs integrated energy,
#      then the same model through benchd.evaluate);
#   5. prints a summary.
#
# Exit status: 0 every check passed on a GPU; 1 a check failed (a GPU that cannot be used fails here,
# loudly); 2 no NVIDIA GPU on this host, so nothing GPU-specific was checked.
# Budget: every step's timeout is cut to what is left of BENCHD_CHECK_BUDGET_S (default 570 s).
# Environment: BENCHD_CHECK_VENV, PYTHON (interpreter for a new venv, default python3), TORCH_SPEC
#   (default torch==2.13.0), TORCH_INDEX_URL (default the README's CUDA 12.6 index; empty: pip's own
#   index), BENCHD_CHECK_SECONDS (measured seconds per scenario, default 6), pip's usual PIP_* variables.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
started=$(date +%s)
venv=${BENCHD_CHECK_VENV:-${TMPDIR:-/tmp}/benchd-gpu-check-venv}
budget_s=${BENCHD_CHECK_BUDGET_S:-570}
python=${PYTHON:-python3}
seconds=${BENCHD_CHECK_SECONDS:-6}
torch_spec=${TORCH_SPEC:-torch==2.13.0}
torch_index=${TORCH_INDEX_URL-https://download.pytorch.org/whl/cu126}
summary=()
status=0

step() { printf '\n=== [%3ss] %s\n' "$(( $(date +%s) - started ))" "$*"; }
note() { summary+=("$(printf '%-8s %s' "$1" "$2")"); }
fail() { note FAILED "$1"; status=1; }

# limit STEP_MAX_S: a timeout of at most STEP_MAX_S seconds and never past the overall budget
limit() {
    local left=$(( budget_s - ($(date +%s) - started) ))
    if (( left < 5 )); then left=5; fi
    if (( left < $1 )); then echo "$left"; else echo "$1"; fi
}

finish() {
    step "summary"
    printf '%s\n' "${summary[@]}"
    if (( status == 0 )); then
        if [ -n "$gpu" ]; then echo "GPU check PASSED"; else echo "no NVIDIA GPU on this host: nothing GPU-specific was checked"; status=2; fi
    else
        echo "GPU check FAILED"
    fi
    exit "$status"
}

step "GPU"
gpu=""
nodes=$(ls /dev/nvidia[0-9]* 2>/dev/null | tr '\n' ' ')
if [ -n "$nodes" ]; then
    gpu="device node(s) $nodes"
elif "$python" -c 'import ctypes; ctypes.CDLL("libnvidia-ml.so.1")' 2>/dev/null; then
    gpu="the NVML library libnvidia-ml.so.1 loads"
fi
if [ -n "$gpu" ]; then
    echo "NVIDIA GPU: $gpu"
    if command -v nvidia-smi >/dev/null 2>&1; then
        nvidia-smi --query-gpu=index,name,uuid,driver_version,power.limit,temperature.gpu,clocks.sm \
            --format=csv || echo "nvidia-smi failed (the checks below say whether the GPU is usable)"
    fi
    note GPU "$gpu"
else
    echo "no NVIDIA GPU on this host: no /dev/nvidia* device node and no NVML library (libnvidia-ml.so.1)"
    note "no GPU" "no /dev/nvidia* node, no libnvidia-ml.so.1"
fi

step "virtualenv $venv"
if [ ! -x "$venv/bin/python" ] && ! "$python" -m venv "$venv"; then
    fail "cannot create the virtualenv $venv"
    finish
fi
vpy="$venv/bin/python"
export PIP_DISABLE_PIP_VERSION_CHECK=1

step "torch"
if "$vpy" -c 'import torch' >/dev/null 2>&1; then
    echo "torch already installed"
else
    echo "installing $torch_spec${torch_index:+ from $torch_index}"
    if ! timeout "$(limit 300)" "$vpy" -m pip install --quiet "$torch_spec" ${torch_index:+--index-url "$torch_index"}; then
        fail "pip install $torch_spec"
        finish
    fi
fi
torch_line=$("$vpy" -c 'import torch; print("torch", torch.__version__, "CUDA build", torch.version.cuda, "CUDA available", torch.cuda.is_available(), "devices", torch.cuda.device_count())' 2>&1)
echo "$torch_line"
note torch "$torch_line"

step "install benchd with its test extras (editable)"
if ! timeout "$(limit 240)" "$vpy" -m pip install --quiet -e '.[test]'; then
    fail "pip install -e .[test]"
    finish
fi

step "tests marked gpu"
if timeout "$(limit 240)" "$vpy" -m pytest -m gpu -q -rs -p no:cacheprovider; then
    note ok "pytest -m gpu$([ -z "$gpu" ] && echo ' (skipped: no GPU)')"
else
    fail "pytest -m gpu"
fi

if [ -z "$gpu" ]; then
    echo "no NVIDIA GPU on this host: the GPU benchmark is not run"
    finish
fi

step "torch can use the GPU"
if "$vpy" -c 'import sys, torch; sys.exit(0 if torch.version.cuda and torch.cuda.is_available() else 1)'; then
    note ok "torch sees the GPU"
else
    fail "torch cannot use the GPU ($torch_line): install the README's CUDA build of torch, check the driver"
    finish
fi

step "ResNet-50-sized CNN on cuda:0: single-stream and offline, energy and telemetry"
if timeout "$(limit 240)" "$vpy" bench/gpu_check.py --seconds "$seconds"; then
    note ok "bench/gpu_check.py"
else
    fail "bench/gpu_check.py"
fi
finish
