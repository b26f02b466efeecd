"""GPU check of the worker sandbox: does CUDA work under the worker's memory limit (RLIMIT_DATA)?

    python bench/sandbox_gpu_check.py [--device cuda:0]

RLIMIT_DATA counts a process's private writable memory; CUDA maps large virtual ranges of its own
(unified addressing, pinned staging buffers), so a limit that is fine on the CPU could break CUDA's
start. For each limit (none, the default 3/4 of host RAM, 16 GiB, 8 GiB, 4 GiB) this runs a small
real model on the GPU through benchd's own launcher and prints: outcome, error kind, the worker's
peak RSS, its p99 and the first line of any error. Prints figures, asserts nothing; ``--device cpu``
runs the same on the CPU for comparison.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchd.records import RunSpec, ScenarioSettings  # noqa: E402
from benchd.runner.launch import WorkerLimits, run_spec  # noqa: E402
from benchd.runner.sandbox import default_memory_limit_bytes, format_bytes  # noqa: E402

GIB = 1 << 30


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda:0")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="benchd-sandbox-gpu-"))
    model = root / "mlp"
    subprocess.run([sys.executable, "-m", "benchd.runner.zoo", str(model), "mlp"], check=True, timeout=300)
    settings = ScenarioSettings(warmup_queries=20, warmup_s=0.2, min_duration_s=1.0, max_duration_s=5.0)
    spec = RunSpec(model="mlp", version="1", model_path=str(model), device=args.device, scenarios=(settings,))
    print(f"host RAM limit by default: {format_bytes(default_memory_limit_bytes() or 0)}")
    for label, limit in [
        ("none", None),
        ("default", default_memory_limit_bytes()),
        ("16 GiB", 16 * GIB),
        ("8 GiB", 8 * GIB),
        ("4 GiB", 4 * GIB),
    ]:
        out = root / f"run-{label.replace(' ', '')}"
        result = run_spec(spec, out, limits=WorkerLimits(memory_limit_bytes=limit))
        exit_doc = json.loads((out / "worker.exit").read_text()) if (out / "worker.exit").exists() else {}
        first = (result.error or "").splitlines()[0][:160] if result.error else ""
        p99 = result.results[0].latency.p99_s * 1e3 if result.results else float("nan")
        print(
            f"limit {label:>8}: {result.outcome:<7} {result.error_kind or '-':<16} "
            f"peak RSS {exit_doc.get('max_rss_kib', 0) / 1024:7.0f} MiB  p99 {p99:.3f} ms  {first}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
