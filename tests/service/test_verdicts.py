"""VerdictMaker, built directly: history mode from stored runs, batch mode with the real comparison worker."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from benchd.config import DaemonConfig
from benchd.history import RunRecord, SQLiteHistoryStore
from benchd.records import NoiseFloor, RunResult, Verdict
from benchd.registry import LocalFolderWatcher
from benchd.service.verdicts import VerdictMaker
from tests.comparison.models import write_models
from tests.daemon.conftest import QUICK_BENCHMARK
from tests.history.conftest import _run_result, _scenario_result
from tests.service.parts import Registry, StoreQueue

CLASS = "cpu-x86_64-8c"


def _latencies_ns(p50_s: float, seed: int, n: int = 400) -> np.ndarray:
    """A run's per-query latencies: lognormal around ``p50_s`` with a tail, as int64 ns."""
    rng = np.random.default_rng(seed)
    return (p50_s * rng.lognormal(0.0, 0.15, n) * 1e9).astype(np.int64)


class History:
    """Publishes versions, stores finished runs with raw latencies, and builds the VerdictMaker."""

    def __init__(
        self, store: SQLiteHistoryStore, registry: Registry, watcher: LocalFolderWatcher, config: DaemonConfig
    ) -> None:
        self.store, self.registry, self.watcher, self.config = store, registry, watcher, config
        self.queue = StoreQueue(store, config)

    def publish(self, *versions: str, model: str = "m") -> None:
        for version in versions:
            self.registry.publish(model, version)
        for mv in self.watcher.poll():
            self.store.record_version(mv)

    def stored_run(
        self,
        version: str,
        p50_s: float,
        seed: int,
        *,
        hardware_class: str = CLASS,
        baseline: str | None = None,
    ) -> tuple[RunRecord, RunResult]:
        """A finished single_stream run of m/version on the CPU whose latencies are stored."""
        (run_id,) = self.queue(self.store.get_version("m", version), 50, "test", True, baseline)
        record = self.store.claim_next_run("cpu")
        assert record is not None and record.id == run_id
        result = _run_result(record.spec, (_scenario_result(device="cpu"),), hardware_class=hardware_class)
        self.store.finish_run(run_id, result, {0: _latencies_ns(p50_s, seed)})
        return self.store.get_run(run_id), result

    def maker(self, config: DaemonConfig | None = None, runs_dir: Path | None = None) -> VerdictMaker:
        config = config or self.config
        return VerdictMaker(
            self.store,
            {self.watcher.name: self.watcher},
            config.benchmark,
            config.verdict,
            runs_dir or Path(config.data_dir) / "runs",
            fingerprint=lambda slot: {"hardware_class": CLASS},
        )


@pytest.fixture
def history(store, registry, watcher, make_config) -> History:
    return History(store, registry, watcher, make_config(verdict={"mode": "history"}))


def _states(verdict: Verdict) -> dict[str, str]:
    return {m.metric: m.state for m in verdict.metrics}


def test_history_mode_decides_from_stored_runs_and_says_it_is_weaker(history: History) -> None:
    history.publish("1", "2")
    for seed in range(3):
        history.stored_run("1", 0.002, seed)
    for seed in range(3, 5):
        history.stored_run("2", 0.004, seed)  # twice as slow, run after run
    record, result = history.stored_run("2", 0.004, 5)
    (verdict,) = history.maker().decide_for_run(record, result, threading.Event())
    assert (verdict.model, verdict.candidate_version, verdict.baseline_version) == ("m", "2", "1")
    assert (verdict.scenario, verdict.batch_size, verdict.device) == ("single_stream", 1, "cpu")
    assert verdict.method == "history" and verdict.weaker is True
    assert _states(verdict) == {"p99_latency": "regressed", "p50_latency": "regressed"}
    p99 = next(m for m in verdict.metrics if m.metric == "p99_latency")
    assert 1.7 < p99.ratio_low <= p99.ratio <= p99.ratio_high < 2.3
    assert history.store.latest_verdicts("m") == [verdict]  # stored, as the exporter and API read it


def test_history_mode_twins_are_not_a_regression(history: History) -> None:
    history.publish("1", "2")
    for seed in range(3):
        history.stored_run("1", 0.002, seed)
    for seed in range(3, 5):
        history.stored_run("2", 0.002, seed)
    record, result = history.stored_run("2", 0.002, 5)
    (verdict,) = history.maker().decide_for_run(record, result, threading.Event())
    assert "regressed" not in _states(verdict).values()


def test_one_stored_run_a_side_is_inconclusive_never_a_pass(history: History) -> None:
    history.publish("1", "2")
    history.stored_run("1", 0.002, 0)
    record, result = history.stored_run("2", 0.008, 1)
    (verdict,) = history.maker().decide_for_run(record, result, threading.Event())
    assert set(_states(verdict).values()) == {"inconclusive"}


def test_a_baseline_is_never_taken_from_another_hardware_class(history: History) -> None:
    history.publish("1", "2")
    for seed in range(3):
        history.stored_run("1", 0.002, seed, hardware_class="nvidia-h100-drv550")
    record, result = history.stored_run("2", 0.004, 9)
    assert history.maker().decide_for_run(record, result, threading.Event()) == []
    assert history.store.latest_verdicts() == []
    # once the baseline also ran on this class, only those runs are compared
    for seed in range(3, 5):
        history.stored_run("1", 0.001, seed)
    for seed in range(10, 12):
        history.stored_run("2", 0.004, seed)
    (verdict,) = history.maker().decide_for_run(record, result, threading.Event())
    assert {m.pairs for m in verdict.metrics} == {2}  # the smaller side: v1's 2 runs here, not its 5 in all
    p99 = next(m for m in verdict.metrics if m.metric == "p99_latency")
    assert p99.state == "regressed" and p99.ratio > 3.0  # 1 ms -> 4 ms, not diluted by the 2 ms H100 runs


def test_the_champion_and_a_requested_baseline_beat_the_previous_version(history: History) -> None:
    history.publish("1", "2", "3")
    for version, p50_s in (("1", 0.002), ("2", 0.004)):
        for seed in range(2):
            history.stored_run(version, p50_s, seed)
    history.stored_run("3", 0.004, 7)
    record, result = history.stored_run("3", 0.004, 8)
    maker = history.maker()
    assert [v.baseline_version for v in maker.decide_for_run(record, result, threading.Event())] == ["2"]
    history.registry.set_champion("m", "1")
    (verdict,) = maker.decide_for_run(record, result, threading.Event())
    assert verdict.baseline_version == "1" and _states(verdict)["p99_latency"] == "regressed"
    record, result = history.stored_run("3", 0.004, 9, baseline="2")  # e.g. POST /api/v1/runs {"baseline"}
    assert [v.baseline_version for v in maker.decide_for_run(record, result, threading.Event())] == ["2"]


def test_no_verdict_for_a_failed_run_a_cancelled_slot_or_mode_off(history: History, make_config) -> None:
    history.publish("1", "2")
    for seed in range(2):
        history.stored_run("1", 0.002, seed)
    record, result = history.stored_run("2", 0.004, 5)
    cancelled = threading.Event()
    cancelled.set()
    assert history.maker().decide_for_run(record, result, cancelled) == []
    failed = RunResult(model="m", version="2", device="cpu", outcome="failed", error_kind="timeout")
    assert history.maker().decide_for_run(record, failed, threading.Event()) == []
    off = history.maker(make_config(verdict={"mode": "off"}))
    assert off.decide_for_run(record, result, threading.Event()) == []
    assert history.store.latest_verdicts() == []


@pytest.fixture(scope="session")
def fast_and_slow(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two tiny models whose forward sleeps 1 ms and 10 ms: a 10x regression CPU contention cannot hide."""
    root = tmp_path_factory.mktemp("verdict-models")
    write_models({root / "fast": ("sleep", {"sleep_s": 0.001}), root / "slow": ("sleep", {"sleep_s": 0.010})})
    return {"fast": root / "fast", "slow": root / "slow"}


@pytest.mark.slow  # a real interleaved comparison batch (several worker processes)
def test_batch_mode_re_measures_the_baseline_with_the_real_comparison_worker(
    store: SQLiteHistoryStore,
    registry: Registry,
    watcher: LocalFolderWatcher,
    make_config: Callable[..., DaemonConfig],
    fast_and_slow: dict[str, Path],
    tmp_path: Path,
) -> None:
    config = make_config(
        benchmark={
            **QUICK_BENCHMARK,
            "device": "cpu",
            "threads": 1,
            "allow_pickle": True,
        },  # zoo sleep: pickled
        verdict={"mode": "batch", "trial": "0.3s", "min_pairs": 4, "max_pairs": 10, "time_cap": "90s"},
    )
    history = History(store, registry, watcher, config)
    registry.publish("m", "1", fast_and_slow["fast"])
    registry.publish("m", "2", fast_and_slow["slow"])
    for mv in watcher.poll():
        store.record_version(mv)
    history.stored_run("1", 0.001, 0)  # the baseline needs a stored run on this hardware class
    record, result = history.stored_run("2", 0.010, 1)
    (verdict,) = history.maker(runs_dir=tmp_path / "runs").decide_for_run(record, result, threading.Event())
    assert (verdict.candidate_version, verdict.baseline_version, verdict.device) == ("2", "1", "cpu")
    assert verdict.weaker is False and verdict.method != "history"
    # p50 is decisive even on a loaded machine; p99 there may need more pairs, but is never "fine"
    assert verdict.state == "regressed" and _states(verdict)["p50_latency"] == "regressed", verdict
    assert _states(verdict)["p99_latency"] in ("regressed", "inconclusive"), verdict
    assert {m.pairs for m in verdict.metrics} <= set(range(4, 11))
    assert store.latest_verdicts("m") == [verdict]
    assert (tmp_path / "runs" / str(record.id) / "compare-single_stream-bs1").is_dir()


def _floor(p99_ratio: float, hardware_class: str = CLASS) -> NoiseFloor:
    return NoiseFloor(
        model="m", version="1", hardware_class=hardware_class, device="cpu", scenario="single_stream",
        batch_size=1, p99_ratio=p99_ratio, p50_ratio=0.01, batches=3, pairs=12, budget_s=180.0,
        threshold=0.1, widths=(p99_ratio,) * 3,
    )  # fmt: skip


def test_a_threshold_below_the_noise_floor_is_refused_with_a_sentence_and_no_batch(
    store: SQLiteHistoryStore, registry: Registry, watcher: LocalFolderWatcher, make_config, tmp_path: Path
) -> None:
    # The placeholder versions cannot run: a refusal must decide without starting any worker.
    config = make_config(verdict={"mode": "batch", "threshold": 0.10, "calibration_batches": 0})
    history = History(store, registry, watcher, config)
    history.publish("1", "2")
    history.stored_run("1", 0.001, 0)
    record, result = history.stored_run("2", 0.001, 1)
    store.save_noise_floor(_floor(0.04, hardware_class="another-class"))  # another class: not this one's
    store.save_noise_floor(_floor(0.14))
    (verdict,) = history.maker(runs_dir=tmp_path / "runs").decide_for_run(record, result, threading.Event())
    assert (verdict.state, verdict.method, verdict.metrics) == ("refused", "refused", ())
    assert "the P99 threshold 10% is below this host's noise floor 14.0%" in verdict.note
    assert "raise verdict.thresholds.p99_latency" in verdict.note
    assert not (tmp_path / "runs").exists()  # no comparison worker started
    assert store.verdict_rows("m", "2")[0].inputs["noise_floor"]["p99_ratio"] == 0.14
    # A threshold above the floor is not refused: the batch runs (and fails here: placeholder artifacts).
    store.save_noise_floor(_floor(0.08))
    assert history.maker(runs_dir=tmp_path / "runs").refusal(
        history.store.get_version("m", "2"), result.results[0], CLASS, "1"
    ) is None


@pytest.mark.slow  # real A/A batches of the comparison worker
def test_the_first_version_on_a_hardware_class_gets_its_noise_floor_measured(
    store: SQLiteHistoryStore,
    registry: Registry,
    watcher: LocalFolderWatcher,
    make_config: Callable[..., DaemonConfig],
    fast_and_slow: dict[str, Path],
    tmp_path: Path,
) -> None:
    config = make_config(
        benchmark={**QUICK_BENCHMARK, "device": "cpu", "threads": 1, "allow_pickle": True},
        verdict={"mode": "batch", "trial": "0.2s", "trial_queries": 100, "min_pairs": 3, "max_pairs": 3,
                 "time_cap": "60s", "calibration_batches": 2},
    )  # fmt: skip
    history = History(store, registry, watcher, config)
    registry.publish("m", "1", fast_and_slow["fast"])
    for mv in watcher.poll():
        store.record_version(mv)
    record, result = history.stored_run("1", 0.001, 0)
    maker = VerdictMaker(
        store, {watcher.name: watcher}, config.benchmark, config.verdict, tmp_path / "runs",
        fingerprint=lambda slot: {"hardware_class": CLASS}, calibration_batches=2,
    )  # fmt: skip
    assert maker.decide_for_run(record, result, threading.Event()) == []  # the first version: no baseline
    floor = store.noise_floor("m", CLASS)
    assert floor is not None and (floor.batches, floor.version, floor.device) == (2, "1", "cpu")
    assert len(floor.widths) == 2 and floor.p99_ratio == pytest.approx(sum(floor.widths) / 2)
    assert floor.p50_ratio > 0 and 0 < floor.p99_ratio < 10  # a width, measured: not a default
    # three pairs per A/A batch, run to the budget (nothing stops a calibration early)
    assert floor.pairs == 3
    # measured once per model and hardware class: a later run does not measure it again
    runs_before = sorted((tmp_path / "runs").iterdir())
    assert maker.calibrate_if_missing(record, history.store.get_version("m", "1"), result.results[0], CLASS,
                                      threading.Event()) is None  # fmt: skip
    assert sorted((tmp_path / "runs").iterdir()) == runs_before
