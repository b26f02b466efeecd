"""What a hostile worker costs the daemon, and what starting a worker costs, now vs a reference commit.

    .venv/bin/python bench/sandbox_bench.py [--reference 4a4dd9e] [--stdout-mb 600] [--stderr-mb 500]
                                            [--starts 10]

Each case runs in a fresh "host" process that calls ``run_worker`` the way the daemon does, once with the
current ``benchd.runner.launch`` and once with the reference commit's ``launch.py`` (read with ``git show``).
The worker is a stand-in module (no torch), so only the launcher's share is measured:

1. start: a worker that exits at once; wall time of ``run_worker`` (median of ``--starts``), and a bare
   ``python -c pass`` beside it for scale.
2. stdout flood: the worker writes ``--stdout-mb`` MB to stdout without a newline; the host's peak RSS.
3. stderr flood: the worker writes ``--stderr-mb`` MB to stderr and exits without a result; the host's
   peak RSS and the size of what lands in the run folder (``worker.log*``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

STANDIN = """
import os, sys
case, size = sys.argv[1], int(sys.argv[2])
chunk = b"x" * (1 << 20)
if case == "stdout":
    for _ in range(size >> 20):
        os.write(1, chunk)
elif case == "stderr":
    for _ in range(size >> 20):
        os.write(2, chunk)
    sys.exit(1)
"""


def load_launch(impl: str, scratch: Path):
    """The launcher module: ``current`` (installed benchd) or a git ref's launch.py."""
    if impl == "current":
        from benchd.runner import launch

        return launch
    source = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{impl}:daemon/benchd/runner/launch.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = scratch / f"launch_{impl}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"launch_{impl}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def host(impl: str, case: str, size: int, repeats: int) -> dict:
    """Run one case in this process; return its figures."""
    scratch = Path(tempfile.mkdtemp(prefix="sandbox-bench-"))
    (scratch / "standin_worker.py").write_text(STANDIN)
    launch = load_launch(impl, scratch)
    env = {"PYTHONPATH": str(scratch)}
    before = rss_mib()
    walls = []
    out = scratch / "run"
    for _ in range(repeats):
        started = time.perf_counter()
        end = launch.run_worker(
            "standin_worker", [case, str(size)], out, timeout_s=600, what="the bench", env=env
        )
        walls.append(time.perf_counter() - started)
    logs = sum(p.stat().st_size for p in out.glob("worker.log*"))
    return {
        "wall_ms": statistics.median(walls) * 1000,
        "rss_before_mib": before,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "log_mib": logs / 2**20,
        "error_kind": end.error_kind,
    }


def run_host(impl: str, case: str, size: int, repeats: int = 1) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--host", impl, case, str(size), str(repeats)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{impl} {case} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--host":
        impl, case, size, repeats = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
        print(json.dumps(host(impl, case, size, repeats)))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", default="4a4dd9e", help="git ref of the launcher to compare with")
    parser.add_argument("--stdout-mb", type=int, default=600)
    parser.add_argument("--stderr-mb", type=int, default=500)
    parser.add_argument("--starts", type=int, default=10)
    args = parser.parse_args()
    impls = ("current", args.reference)
    bare = []
    for _ in range(args.starts):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare.append(time.perf_counter() - t)
    print(f"bare 'python -c pass': {statistics.median(bare) * 1000:.0f} ms (median of {args.starts})")
    print(f"{'case':<28}{'figure':<26}{'current':>12}{args.reference:>12}")
    rows = [
        ("start (exits at once)", "run_worker wall ms", "start", 0, "wall_ms", args.starts),
        (
            f"stdout {args.stdout_mb} MB, no \\n",
            "host peak RSS MiB",
            "stdout",
            args.stdout_mb,
            "peak_rss_mib",
            1,
        ),
        (f"stderr {args.stderr_mb} MB", "host peak RSS MiB", "stderr", args.stderr_mb, "peak_rss_mib", 1),
        (f"stderr {args.stderr_mb} MB", "worker.log* MiB", "stderr", args.stderr_mb, "log_mib", 1),
    ]
    cache: dict[tuple[str, str], dict] = {}
    for label, figure, case, mb, key, repeats in rows:
        values = []
        for impl in impls:
            if (impl, case) not in cache:
                cache[(impl, case)] = run_host(impl, case, mb << 20, repeats)
            values.append(cache[(impl, case)][key])
        print(f"{label:<28}{figure:<26}{values[0]:>12.1f}{values[1]:>12.1f}")
    base = {impl: cache[(impl, "start")]["rss_before_mib"] for impl in impls}
    ref = base[args.reference]
    print(f"host RSS before any worker: current {base['current']:.1f} MiB, reference {ref:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
