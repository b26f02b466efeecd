"""compare(): real interleaved batches of two model versions through the pairs worker, on the CPU."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from benchd.compare.batch import Batch, thresholds_by_metric
from benchd.compare.plan import SIDES, ComparisonPlan
from benchd.compare.run import compare, plan_comparison
from benchd.config import BenchConfig, VerdictConfig
from benchd.devices import open_devices
from benchd.devices.meter import WindowSampler
from benchd.devices.rapl import RAPLReader
from benchd.history import SQLiteHistoryStore
from benchd.records import EnergyReport, ScenarioSettings, TelemetrySummary
from tests.conftest import quick


def plan_for(baseline: Path, candidate: Path, **kw: object) -> ComparisonPlan:
    bench = BenchConfig(scenarios=(quick(),), threads=1, allow_pickle=True, device="cpu")
    verdict = VerdictConfig(trial_s=0.3, min_pairs=4, max_pairs=8, time_cap_s=60.0)
    plan = plan_comparison(
        bench, verdict, model="m", candidate_version="2", candidate_path=str(candidate),
        baseline_version="1", baseline_path=str(baseline),
    )  # fmt: skip
    return plan.replace(timeout_s=120.0, trial_queries=200, **kw)


def test_twins_are_not_regressed_and_energy_and_throttling_are_recorded(versions, tmp_path):
    # Fake GPU (hardware is the one thing faked): 100 W, throttled the whole time. The worker runs on the CPU;
    # the sampler reads the fake cuda:0, as the daemon does for a scheduler slot. Whole trials, as on a GPU
    # (verdict.block_queries: auto gives 0 there), so each trial's window has its own energy.
    devices = open_devices("fake", fake={"count": 1, "power_w": 100, "throttle_reasons": ["thermal"]})
    sampler = WindowSampler(devices, rapl=RAPLReader("/nonexistent")).start()
    events = []
    try:
        outcome = compare(
            plan_for(versions["mlp"], versions["mlp"], block_queries=0),
            tmp_path / "out",
            meter=sampler,
            meter_device="cuda:0",
            on_event=events.append,
        )
    finally:
        sampler.stop()
        devices.close()
    assert outcome.ok, outcome.error
    verdict = outcome.verdict
    states = {m.metric: m.state for m in verdict.metrics}
    assert set(states) == {"p99_latency", "p50_latency", "throughput", "energy_per_sample"}
    assert "regressed" not in states.values(), (verdict, outcome.inputs["trials"])
    assert verdict.method == "paired" and verdict.device == "cpu"
    assert (verdict.model, verdict.candidate_version, verdict.baseline_version) == ("m", "2", "1")
    inputs = outcome.inputs
    pairs = inputs["pairs"]
    assert 4 <= pairs <= 8
    # one pair per worker process, each loading the versions in turn order
    assert inputs["units"] == pairs and [u["load_order"][0] for u in inputs["unit_log"][:2]] == [
        "baseline",
        "candidate",
    ]
    assert all(u["warmup"]["baseline"]["queries"] > 0 for u in inputs["unit_log"])
    assert inputs["throttled_pairs"] == list(range(len(inputs["throttled_pairs"])))
    assert inputs["throttled_pairs_left_out"] is False
    assert "throttled" in verdict.note
    energy = [t["energy_j"] for t in inputs["trials"]]
    assert all(e is not None and e > 0 for e in energy)
    # ~100 W over each ~0.3 s window
    assert all(25 < e < 100 for e in energy), energy
    # AB, BA, AB...: the baseline runs first in even pairs, second in odd pairs
    trials = [(e["pair_index"], e["side"]) for e in events if e["event"] == "trial"]
    assert trials[:4] == [(0, "baseline"), (0, "candidate"), (1, "candidate"), (1, "baseline")]
    json.dumps(inputs)  # stored as JSON


def test_on_a_cpu_the_sides_of_a_pair_take_turns_in_blocks(versions, tmp_path):
    # verdict.block_queries: auto on a CPU: each pair is one window in which the sides alternate query by
    # query, so both trials of a pair share the window (energy is then not compared, and the verdict says so).
    plan = plan_for(versions["mlp"], versions["mlp_slow"])
    assert plan.block_queries == 1 and plan.interleaved
    devices = open_devices("fake", fake={"count": 1, "power_w": 100})
    sampler = WindowSampler(devices, rapl=RAPLReader("/nonexistent")).start()
    events: list[dict] = []
    try:
        outcome = compare(
            plan, tmp_path / "out", meter=sampler, meter_device="cuda:0", on_event=events.append
        )
    finally:
        sampler.stop()
        devices.close()
    assert outcome.ok, outcome.error
    trials = [e for e in events if e["event"] == "trial"]
    for first, second in zip(trials[::2], trials[1::2], strict=True):
        assert first["pair_index"] == second["pair_index"] and {first["side"], second["side"]} == set(SIDES)
        assert (first["window_start_mono_s"], first["window_end_mono_s"]) == (
            second["window_start_mono_s"],
            second["window_end_mono_s"],
        )
        window_s = first["window_end_mono_s"] - first["window_start_mono_s"]
        # each side's duration is its own blocks' time: together no more than the window
        assert first["duration_s"] + second["duration_s"] <= window_s
        for trial in (first, second):
            assert trial["queries"] >= plan.trial_queries and trial["block_queries"] == 1
    # the sides alternate query by query, so they end with the same count
    assert all(a["queries"] == b["queries"] for a, b in zip(trials[::2], trials[1::2], strict=True))
    assert all(u["block_queries"] == 1 for u in outcome.inputs["unit_log"])
    states = {m.metric: m.state for m in outcome.verdict.metrics}
    assert "energy_per_sample" not in states and "took turns every 1 query" in outcome.verdict.note
    assert states["p50_latency"] == "regressed", outcome.verdict
    assert all(t["energy_j"] is None for t in outcome.inputs["trials"])


def test_block_queries_is_auto_on_a_cpu_whole_trials_on_a_gpu_or_as_configured(versions):
    def planned(device: str, block_queries: object, scenario: str = "single_stream") -> ComparisonPlan:
        bench = BenchConfig(scenarios=(quick(scenario),), threads=1, device=device)
        return plan_comparison(
            bench, VerdictConfig(block_queries=block_queries), model="m", candidate_version="2",
            candidate_path=str(versions["mlp"]), baseline_version="1", baseline_path=str(versions["mlp"]),
        )  # fmt: skip

    assert planned("cpu", "auto").block_queries == 1
    assert planned("cuda:0", "auto").block_queries == 0
    assert planned("cuda:0", 10).block_queries == 10 and planned("cpu", 0).block_queries == 0
    assert planned("cpu", "auto").interleaved and not planned("cpu", 0).interleaved
    # a server trial's load is its arrival schedule, a concurrency trial's its streams: always whole
    assert not planned("cpu", "auto", "server").interleaved
    assert not planned("cpu", "auto", "concurrency").interleaved


def processes_naming(path: Path) -> list[str]:
    """Command lines of the live processes that name ``path`` (a comparison's workers name their folders)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes() if proc.name.isdigit() else b""
        except OSError:  # ended meanwhile
            continue
        if str(path).encode() in cmdline:
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


def test_a_slower_candidate_is_regressed_and_the_batch_stops_once_decided(versions, tmp_path):
    plan = plan_for(versions["mlp"], versions["mlp_slow"], max_pairs=12)
    outcome = compare(plan, tmp_path / "out")
    assert outcome.ok, outcome.error
    states = {m.metric: m.state for m in outcome.verdict.metrics}
    why = (outcome.verdict, outcome.inputs["trials"])
    assert states["p50_latency"] == "regressed", why
    assert states["p99_latency"] == "regressed", why
    assert states["throughput"] == "regressed", why
    assert outcome.verdict.state == "regressed"
    inputs = outcome.inputs
    # decided early: no worker process started after the verdict was decided
    assert inputs["stopped"] == "decided", why
    assert inputs["pairs"] < plan.max_pairs
    assert len(list((tmp_path / "out").glob("unit-*/trial-*.npy"))) == 2 * inputs["pairs"]
    # every unit after the first was started while the one before it ran (its plan.json came later); the
    # next one, started while the last ran, was ended once the batch had decided: no folder, no process
    units = inputs["unit_log"]
    assert [unit["prestarted"] for unit in units] == [False] + [True] * (len(units) - 1)
    assert len(list((tmp_path / "out").glob("unit-*"))) == len(units)
    assert processes_naming(tmp_path / "out") == []
    p50 = inputs["metrics"]["p50_latency"]
    assert p50["interval"][0] > 1 + p50["m"] and p50["t"] == pytest.approx(0.10)
    # the sides alternate query by query (a CPU's default): equal counts, the pair sized by their mean latency
    assert inputs["n"]["baseline"] == inputs["n"]["candidate"] >= inputs["pairs"] * plan.trial_queries
    assert inputs["decisions"][-1]["final"] is True
    # the daemon stores verdicts with their inputs
    store = SQLiteHistoryStore(str(tmp_path / "benchd.sqlite"))
    try:
        store.save_verdict(outcome.verdict, outcome.inputs)
        row = store.verdict_rows("m", "2")[0]
        assert row.verdict.state == "regressed"
        assert row.inputs["pairs"] == inputs["pairs"]
        assert (
            row.inputs["metrics"]["p99_latency"]["interval"] == inputs["metrics"]["p99_latency"]["interval"]
        )
    finally:
        store.close()


def test_a_failing_candidate_gives_a_typed_error_not_a_verdict(versions, tmp_path):
    outcome = compare(plan_for(versions["mlp"], versions["faulty"]), tmp_path / "out")
    assert outcome.verdict is None and not outcome.ok
    assert outcome.error_kind == "model_error"
    assert "candidate version 2" in outcome.error and "deliberate failure" in outcome.error
    assert outcome.inputs["stopped"] == "error"
    assert processes_naming(tmp_path / "out") == []  # the next unit's waiting worker was ended too


def test_cancel_kills_the_worker_and_says_interrupted(versions, tmp_path):
    cancel = threading.Event()

    def on_event(event):
        if event["event"] == "trial":
            cancel.set()

    outcome = compare(
        plan_for(versions["mlp"], versions["mlp"]), tmp_path / "out", cancel=cancel, on_event=on_event
    )
    assert outcome.error_kind == "interrupted" and outcome.verdict is None
    assert processes_naming(tmp_path / "out") == []


def test_plan_from_config_and_json_round_trip():
    from benchd.records import from_dict, to_dict

    bench = BenchConfig(
        scenarios=(ScenarioSettings(name="offline"), ScenarioSettings()), batch_sizes=(8, 1), timeout_s=100
    )
    verdict = VerdictConfig(threshold=0.2, min_pairs=3, max_pairs=9, trial_s=1.5, time_cap_s=60.0,
                            thresholds={"p99_latency": 0.15})  # fmt: skip
    plan = plan_comparison(
        bench, verdict, model="m", candidate_version="2", candidate_path="/c", baseline_version="1",
        baseline_path="/b", device="cpu",
    )  # fmt: skip
    assert plan.scenario.name == "offline" and plan.batch_size == 8
    assert (plan.min_pairs, plan.max_pairs, plan.trial_s, plan.time_cap_s) == (3, 9, 1.5, 60.0)
    assert plan.timeout_s == 160.0
    th = thresholds_by_metric(plan)
    assert th["p99_latency"].threshold == 0.15 and th["p50_latency"].threshold == 0.2
    assert from_dict(ComparisonPlan, json.loads(json.dumps(to_dict(plan)))) == plan
    with pytest.raises(ValueError, match="min_pairs"):
        plan.replace(min_pairs=5, max_pairs=4)


class _WindowMeter:
    """Stands in for the device sampler: throttled inside the given windows, 2 J per trial."""

    def __init__(self, throttled_windows: list[tuple[float, float]]) -> None:
        self.throttled = throttled_windows

    def energy_for_window(self, device, start, end, samples=0):
        return EnergyReport(measured=True, source="fake", window_s=end - start, energy_j=2.0)

    def telemetry_for_window(self, device, start, end):
        hit = any(a <= start < b for a, b in self.throttled)
        return TelemetrySummary(samples=3, throttled=hit, throttle_reasons=("thermal",) if hit else ())


def _event(tmp_path: Path, pair: int, side: str, scale: float, start: float) -> dict:
    rng = np.random.default_rng(pair * 2 + (side == "candidate"))
    lat = (rng.lognormal(0, 0.05, 500) * 1e6 * scale).astype(np.int64)
    path = tmp_path / f"{pair}-{side}.npy"
    np.save(path, lat)
    return {"event": "trial", "unit": pair, "side": side, "pair_index": pair, "latencies_file": str(path),
            "samples": 500, "duration_s": 0.5, "window_start_mono_s": start,
            "window_end_mono_s": start + 0.5}  # fmt: skip


def test_throttled_pairs_are_left_out_while_enough_clean_pairs_remain(tmp_path):
    plan = plan_for(tmp_path, tmp_path, min_pairs=3, max_pairs=6)
    batch = Batch(plan, _WindowMeter([(10.0, 11.0)]), {"hardware_class": "cpu-x"}, None)
    start = 0.0
    for pair in range(5):
        for side in ("baseline", "candidate"):
            scale = 3.0 if (pair == 2 and side == "candidate") else 1.0  # the throttled pair looks slow
            batch.add_event(_event(tmp_path, pair, side, scale, start))
            start += 1.0 if pair != 1 or side != "candidate" else 7.0
    assert batch.pairs_done == 5 and batch.throttled_pairs == {2}
    verdict = batch.decide(final=True)
    states = {m.metric: m.state for m in verdict.metrics}
    assert states["p50_latency"] == "unchanged", verdict
    batch.stop_reason = "max_pairs"
    inputs = batch.inputs(wall_s=12.0, verdict=verdict)
    assert inputs["pairs"] == 5 and inputs["pairs_used"] == 4 and inputs["throttled_pairs_left_out"] is True
    assert inputs["n"] == {"baseline": 2000, "candidate": 2000}
    assert inputs["fingerprint"]["hardware_class"] == "cpu-x"
    assert any("left out of the verdict" in n for n in batch.notes(verdict))
