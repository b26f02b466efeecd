"""Write several zoo model versions at once, each in its own subprocess (keeps torch out of the tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def write_models(specs: dict[Path, tuple[str, dict[str, object]]]) -> None:
    """Write every ``folder: (kind, options)`` in parallel; raise when one fails."""
    procs = []
    for folder, (kind, options) in specs.items():
        args = [sys.executable, "-m", "benchd.runner.zoo", str(folder), kind]
        for key, value in options.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        procs.append((folder, subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)))
    for folder, proc in procs:
        out, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0, f"writing {folder} failed: {out.decode(errors='replace')[-2000:]}"
