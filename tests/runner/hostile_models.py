"""Pickled models that misbehave on purpose, for the launcher's end-to-end tests through the real worker.

Written in a subprocess (``python -m tests.runner.hostile_models FOLDER KIND OUT_DIR``, which keeps torch
out of the test process) and loaded by the worker with ``allow_pickle`` and ``PYTHONPATH`` set to the repo.
Kinds: ``fork`` (forks a child that ignores SIGTERM on its first query), ``setsid`` (double-forks a child
that leaves the session), each with a ``_hang`` variant that then hangs forever, and ``greedy`` (allocates
4 GiB of host memory on each query).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import torch
import yaml
from torch import nn


class HostileModel(nn.Module):
    """Does what its ``kind`` says on the first query (see the module docstring), then returns ``x * 2``."""

    def __init__(self, kind: str, out_dir: str) -> None:
        super().__init__()
        self.kind = kind
        self.out_dir = out_dir
        self.queries = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.queries += 1
        if self.kind == "greedy":
            return x + torch.ones(1 << 32, dtype=torch.uint8)[:1]
        if self.queries == 1 and self.kind.startswith(("fork", "setsid")):
            _fork_stubborn(Path(self.out_dir), escape=self.kind.startswith("setsid"))
            while self.kind.endswith("_hang"):
                time.sleep(60)
        return x * 2


def _fork_stubborn(out: Path, escape: bool) -> None:
    pid = os.fork()
    if pid == 0:
        try:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            if escape:
                os.setsid()
                if os.fork() != 0:
                    os._exit(0)
            (out / "child.pid.tmp").write_text(str(os.getpid()))
            (out / "child.pid.tmp").rename(out / "child.pid")
            while True:
                time.sleep(60)
        finally:
            os._exit(0)
    if escape:
        os.waitpid(pid, 0)
    while not (out / "child.pid").exists():
        time.sleep(0.01)


def write(folder: Path, kind: str, out_dir: Path) -> Path:
    """Write a model version folder holding a pickled :class:`HostileModel`."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(HostileModel(kind, str(out_dir)), str(folder / "model.pt"))
    spec = {"artifact": "model.pt", "inputs": [{"name": "x", "shape": ["batch", 4], "dtype": "float32"}]}
    (folder / "benchd.yaml").write_text(yaml.safe_dump(spec))
    (folder / "READY").write_text("")
    return folder


if __name__ == "__main__":
    from tests.runner import hostile_models  # pickle the class by its importable name, not __main__

    hostile_models.write(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
