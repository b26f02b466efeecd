"""The real pieces the daemon-part tests are built from: a registry folder, the daemon's enqueue, a clock."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from benchd.config import DaemonConfig
from benchd.history import SQLiteHistoryStore
from benchd.records import ModelVersion
from tests.daemon.conftest import QUICK_BENCHMARK

#: A history verdict needs no worker; a batch verdict's knobs are set per test.
BASE_CONFIG: dict[str, Any] = {
    "http": {"host": "127.0.0.1", "port": 0},
    "devices": {"mode": "fake", "fake": {"power_w": 200}},
    "benchmark": QUICK_BENCHMARK,
    "verdict": {"mode": "history"},
    "shutdown_grace": "5s",
}


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start_s: float = 10_000.0) -> None:
        self.now_s = start_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


class Registry:
    """A local registry folder: :meth:`publish` adds a complete version (``READY`` marker written last)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def publish(self, model: str, version: str, source: Path | None = None) -> Path:
        """Add ``model/version``: a copy of ``source`` (a zoo model folder), else placeholder files."""
        folder = self.root / model / version
        if source is not None:
            shutil.copytree(source, folder)
        else:
            folder.mkdir(parents=True)
            (folder / "model.pt2").write_bytes(b"placeholder: never run")
            (folder / "benchd.yaml").write_text("inputs: [{name: x, shape: [batch, 4]}]\n")
        (folder / "READY").write_text("")
        return folder

    def set_champion(self, model: str, version: str) -> None:
        """Point the model's champion alias at ``version``."""
        (self.root / model / "champion").write_text(version + "\n")


class StoreQueue:
    """What the daemon's enqueue does for a single CPU slot: one run of the configured benchmark per call."""

    def __init__(self, store: SQLiteHistoryStore, config: DaemonConfig, device: str = "cpu") -> None:
        self.store = store
        self.config = config
        self.device = device
        self.calls: list[tuple[str, str, int, str, bool, str | None]] = []

    def __call__(
        self, mv: ModelVersion, priority: int, reason: str, force: bool, baseline: str | None = None
    ) -> list[int]:
        self.calls.append((mv.model, mv.version, priority, reason, force, baseline))
        spec = self.config.benchmark.run_spec(
            model=mv.model, version=mv.version, model_path=mv.path, device=self.device, baseline=baseline
        )
        run_id = self.store.enqueue_run(spec, priority=priority, reason=reason, force=force)
        return [] if run_id is None else [run_id]
