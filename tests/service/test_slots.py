"""SlotWorker, built directly: claims, failures recorded while the slot carries on, interruption, relabelling.

The runs that reach a worker process run a real (tiny) torch model on the CPU; the fake GPU ``cuda:0`` is
what the slot is named after and what the meter reads, as in the daemon's fake-device mode.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from benchd.devices import WindowSampler, host_fingerprint, open_devices
from benchd.devices.rapl import RAPLReader
from benchd.history import RunRecord, SQLiteHistoryStore
from benchd.records import RunResult
from benchd.registry import LocalFolderWatcher
from benchd.service.slots import Slot, SlotWorker
from tests.conftest import write_model
from tests.daemon.conftest import QUICK_BENCHMARK, wait_until
from tests.service.parts import Registry, StoreQueue

TERMINAL = {"ok", "failed", "timeout", "invalid", "interrupted"}
#: The daemon's slot for a fake GPU: queued and metered as cuda:0, torch runs on the CPU.
FAKE_GPU_SLOT = Slot("cuda:0", "cpu")


@pytest.fixture(scope="session")
def tiny_mlp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small .pt2 model version folder (written by a subprocess: no torch in the test process)."""
    return write_model(tmp_path_factory.mktemp("slot-models") / "mlp", "mlp")


@pytest.fixture
def fake_gpu() -> Iterator[Any]:
    """One fake GPU at a constant 200 W, sampled by a started WindowSampler."""
    devices = open_devices("fake", fake={"count": 1, "power_w": 200})
    sampler = WindowSampler(devices, rapl=RAPLReader("/nonexistent")).start()
    yield devices, sampler
    sampler.stop()
    devices.close()


class Finished:
    """The ``after_run`` callback: remembers each finished run in order."""

    def __init__(self) -> None:
        self.runs: list[tuple[RunRecord, RunResult]] = []
        self.lock = threading.Lock()

    def __call__(self, record: RunRecord, result: RunResult, cancel: threading.Event) -> None:
        with self.lock:
            self.runs.append((record, result))


@pytest.fixture
def make_worker(
    tmp_path: Path, store: SQLiteHistoryStore, watcher: LocalFolderWatcher, fake_gpu: Any
) -> Iterator[Callable[..., SlotWorker]]:
    made: list[SlotWorker] = []
    devices, sampler = fake_gpu

    def make(
        slot: Slot = FAKE_GPU_SLOT,
        *,
        after_run: Callable[..., None] | None = None,
        fingerprint: Callable[[str], dict[str, Any]] | None = None,
    ) -> SlotWorker:
        worker = SlotWorker(
            slot,
            store,
            {watcher.name: watcher},
            tmp_path / "runs",
            meter=sampler,
            fingerprint=fingerprint or (lambda name: host_fingerprint(devices, name)),
            after_run=after_run or Finished(),
            wakeup=threading.Condition(),
        )
        made.append(worker)
        return worker

    yield make
    for worker in made:
        worker.stop(grace_s=0.0)


def _record_versions(watcher: LocalFolderWatcher, store: SQLiteHistoryStore) -> None:
    for mv in watcher.poll():
        store.record_version(mv)


def _ended(store: SQLiteHistoryStore, n: int, timeout_s: float) -> list[RunRecord]:
    return wait_until(
        lambda: (lambda rs: rs if len(rs) >= n else None)(
            [r for r in store.list_runs(limit=100) if r.state in TERMINAL]
        ),
        timeout_s,
        f"{n} ended runs",
    )


def test_failures_are_recorded_on_their_run_and_the_slot_carries_on(
    store: SQLiteHistoryStore,
    make_config,
    registry: Registry,
    watcher: LocalFolderWatcher,
    make_worker,
) -> None:
    for model in ("gone", "crashes", "also-gone"):
        registry.publish(model, "1")
    _record_versions(watcher, store)
    queue = StoreQueue(store, make_config(), device="cuda:0")
    by_model = {}
    for model, priority in (("gone", 30), ("crashes", 20), ("also-gone", 10)):
        (run_id,) = queue(store.get_version(model, "1"), priority, "test", False)
        by_model[model] = run_id
    other_slot = StoreQueue(store, make_config(), device="cuda:1")(
        store.get_version("gone", "1"), 99, "t", False
    )
    for model in ("gone", "also-gone"):  # the registry lost the folders after reporting them
        for f in (registry.root / model / "1").iterdir():
            f.unlink()
        (registry.root / model / "1").rmdir()

    def fingerprint(slot: str) -> dict[str, Any]:
        raise RuntimeError("fingerprint bug")  # only the run that reaches the worker launch asks for it

    finished = Finished()
    worker = make_worker(after_run=finished, fingerprint=fingerprint)
    worker.start()
    ended = _ended(store, 3, 60)
    runs = {r.id: r for r in ended}
    gone, crashes, also_gone = (runs[by_model[m]] for m in ("gone", "crashes", "also-gone"))
    assert (gone.state, gone.error_kind) == ("failed", "artifact_not_found")
    assert "is gone" in gone.error
    assert (crashes.state, crashes.error_kind) == ("failed", "internal")
    assert crashes.error == "RuntimeError: fingerprint bug"
    assert (also_gone.state, also_gone.error_kind) == ("failed", "artifact_not_found")  # the slot went on
    assert [r.id for r in sorted(ended, key=lambda r: r.started_unix_s or 0)] == [
        gone.id,
        crashes.id,
        also_gone.id,
    ]  # highest priority first
    assert store.get_run(other_slot[0]).state == "queued"  # another device's run is not this slot's
    assert finished.runs == []  # nothing ran: no verdict or refresh to make
    assert worker.current is None


@pytest.mark.slow  # two real worker processes
def test_runs_go_by_priority_and_a_fake_gpu_slot_labels_its_results(
    tmp_path: Path,
    store: SQLiteHistoryStore,
    make_config,
    registry: Registry,
    watcher: LocalFolderWatcher,
    make_worker,
    tiny_mlp: Path,
) -> None:
    registry.publish("mlp", "1", tiny_mlp)
    registry.publish("mlp", "2", tiny_mlp)
    _record_versions(watcher, store)
    # room to reach min_query_count on a loaded machine: an invalid run is not what this test is about
    roomy = {
        **QUICK_BENCHMARK,
        "threads": 1,
        "defaults": {**QUICK_BENCHMARK["defaults"], "max_duration": "30s"},
    }
    queue = StoreQueue(store, make_config(benchmark=roomy), device="cuda:0")
    low = queue(store.get_version("mlp", "1"), 10, "poll", False)[0]
    high = queue(store.get_version("mlp", "2"), 100, "api", False)[0]
    finished = Finished()
    worker = make_worker(FAKE_GPU_SLOT, after_run=finished)
    worker.start()
    _ended(store, 2, 180)
    assert [record.id for record, _ in finished.runs] == [high, low]
    for record, result in finished.runs:
        stored = store.get_run(record.id)
        assert stored.state == "ok", stored.error
        assert stored.result.device == "cuda:0"
        assert {r.device for r in stored.result.results} == {"cuda:0"}
        energy = stored.result.results[0].energy
        assert energy is not None and energy.measured  # the meter read the fake GPU the slot names
        assert energy.mean_power_w == pytest.approx(200.0)
        assert result == stored.result
        # torch itself ran on the CPU: the worker's own record says so
        written = json.loads((tmp_path / "runs" / str(record.id) / "result.json").read_text())
        assert {r["device"] for r in written["results"]} == {"cpu"}
    assert {(r.result.device, r.result.results[0].device) for r in store.list_runs()} == {
        ("cuda:0", "cuda:0")
    }
    assert [row.device for row in store.result_rows(model="mlp")] == ["cuda:0", "cuda:0"]


@pytest.mark.slow  # a real worker process, interrupted
def test_stop_interrupts_a_run_past_the_grace_period_and_records_it(
    store: SQLiteHistoryStore,
    make_config,
    registry: Registry,
    watcher: LocalFolderWatcher,
    make_worker,
    tiny_mlp: Path,
) -> None:
    registry.publish("mlp", "1", tiny_mlp)
    _record_versions(watcher, store)
    config = make_config(  # a run far longer than the test: only an interruption ends it in time
        benchmark={
            "device": "cpu",
            "scenarios": {"single_stream": {}},
            "defaults": {"min_duration": "120s", "max_duration": "180s", "warmup_queries": 5},
            "timeout": "300s",
        }
    )
    (run_id,) = StoreQueue(store, config, device="cuda:0")(store.get_version("mlp", "1"), 50, "poll", False)
    finished = Finished()
    worker = make_worker(after_run=finished)
    worker.start()
    wait_until(lambda: worker.current == run_id, 60, "the slot to take the run")
    wait_until(
        lambda: (Path(worker.runs_dir) / str(run_id) / "worker.pid").exists(), 120, "the worker to start"
    )
    worker.stop(grace_s=0.5)  # returns once the slot's thread ended
    run = store.get_run(run_id)
    assert (run.state, run.error_kind) == ("interrupted", "interrupted")  # not "ok" two minutes later
    assert finished.runs == []  # an interrupted run gets no verdict
    assert worker.current is None
