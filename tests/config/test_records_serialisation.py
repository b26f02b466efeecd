"""Records serialise through pydantic and still read the JSON that main's hand-written code wrote."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest

from benchd.compare.plan import ComparisonPlan
from benchd.records import (
    EnergyReport,
    LatencySummary,
    MetricVerdict,
    ModelVersion,
    RunResult,
    RunSpec,
    ScenarioResult,
    ScenarioSettings,
    TelemetrySummary,
    Verdict,
    from_dict,
    to_dict,
)
from tests.conftest import REPO

#: Written by ``records.to_dict`` at main (4a4dd9e), before records moved to pydantic.
FIXTURE = REPO / "tests" / "config" / "fixtures" / "records_4a4dd9e.json"


def _records() -> dict[str, list]:
    """The records the fixture was written from."""
    lat = LatencySummary(
        n=1000,
        min_s=0.001,
        mean_s=0.0012,
        std_s=0.0002,
        p50_s=0.0011,
        p90_s=0.0015,
        p95_s=0.0017,
        p99_s=0.0021,
        p999_s=0.003,
        max_s=0.004,
        p99_ci_low_s=0.002,
        p99_ci_high_s=0.0023,
    )
    energy = EnergyReport(
        measured=True,
        source="nvml_counter",
        window_s=5.0,
        energy_j=1250.0,
        energy_per_sample_j=1.25,
        mean_power_w=250.0,
        peak_power_w=260.5,
    )
    tele = TelemetrySummary(
        samples=50,
        mean_utilization_ratio=0.97,
        peak_memory_used_bytes=2 * 2**30,
        peak_temperature_c=71.0,
        mean_sm_clock_hz=1.98e9,
        mean_power_w=250.0,
        throttled=True,
        throttle_reasons=("power_cap", "thermal"),
    )
    sr = ScenarioResult(
        scenario="server",
        batch_size=8,
        device="cuda:0",
        latency=lat,
        queries=1000,
        samples=8000,
        duration_s=5.0,
        throughput_qps=200.0,
        throughput_sps=1600.0,
        mlperf_metric="p99_latency_s",
        mlperf_value=0.0021,
        valid=False,
        invalid_reasons=("bound missed",),
        warmup_queries=20,
        warmup_s=1.0,
        warmup_p50_s=0.0013,
        window_start_mono_s=100.0,
        window_end_mono_s=105.0,
        target_qps=200.0,
        achieved_qps=199.5,
        latency_bound_s=0.002,
        bound_met=False,
        max_valid_qps=None,
        device_time_p50_s=0.0009,
        device_time_p99_s=0.0019,
        concurrency=None,
        samples_per_query=8,
        issue_lag_p99_s=1e-5,
        energy=energy,
        telemetry=tele,
        latencies_file="/runs/1/server-8.npy",
    )
    sr2 = ScenarioResult(
        scenario="single_stream",
        batch_size=1,
        device="cpu",
        latency=lat,
        queries=10,
        samples=10,
        duration_s=0.5,
        throughput_qps=20.0,
        throughput_sps=20.0,
        mlperf_metric="p90_latency_s",
        mlperf_value=0.0015,
        valid=True,
        energy=EnergyReport(measured=False, reason="no GPU"),
    )
    spec = RunSpec(
        model="resnet",
        version="7",
        model_path="/models/resnet/7",
        scenarios=(
            ScenarioSettings(name="server", target_qps=200.0, latency_bound_s=0.002),
            ScenarioSettings(),
        ),
        batch_sizes=(1, 8),
        device="cuda:0",
        dtype="float16",
        amp=True,
        threads=4,
        allow_pickle=False,
        timeout_s=600.0,
        seed=3,
        baseline="champion",
    )
    rr = RunResult(
        model="resnet",
        version="7",
        device="cuda:0",
        outcome="invalid",
        results=(sr, sr2),
        started_unix_s=1.7e9,
        ended_unix_s=1.7e9 + 30,
        fingerprint={"device_name": "NVIDIA H200", "driver": "550", "nested": {"a": [1, 2]}},
        output_dir="/runs/1",
    )
    failed = RunResult(
        model="m", version="1", device="cpu", outcome="failed", error_kind="corrupt_artifact", error="bad zip"
    )
    mv = ModelVersion(
        model="resnet",
        version="7",
        registry="prod",
        path="/cache/resnet/7",
        source_uri="models:/resnet/7",
        created_unix_s=1.7e9,
        aliases=("champion",),
        tags=(("team", "vision"), ("stage", "prod")),
    )
    mvs = [
        MetricVerdict(
            metric="p99_latency",
            state="regressed",
            ratio=1.2,
            ratio_low=1.1,
            ratio_high=1.3,
            baseline_value=0.002,
            candidate_value=0.0024,
            threshold=0.1,
            min_effect=0.05,
            pairs=12,
            n_candidate=6000,
            n_baseline=6000,
        ),
        MetricVerdict(
            metric="throughput",
            state="unchanged",
            ratio=1.0,
            ratio_low=0.97,
            ratio_high=1.02,
            baseline_value=500.0,
            candidate_value=501.0,
            threshold=0.1,
            min_effect=0.05,
            pairs=12,
            higher_is_better=True,
        ),
    ]
    verdict = Verdict(
        model="resnet",
        candidate_version="7",
        baseline_version="6",
        scenario="server",
        batch_size=8,
        device="cuda:0",
        method="batch",
        metrics=tuple(mvs),
        decided_unix_s=1.7e9,
        weaker=False,
        note="n",
    )
    return {"RunResult": [rr, failed], "RunSpec": [spec], "ModelVersion": [mv], "Verdict": [verdict],
            "ScenarioResult": [sr2]}  # fmt: skip


CLASSES = {"RunResult": RunResult, "RunSpec": RunSpec, "ModelVersion": ModelVersion, "Verdict": Verdict,
           "ScenarioResult": ScenarioResult}  # fmt: skip


def test_json_written_by_main_reads_back_to_the_same_records():
    stored = json.loads(FIXTURE.read_text())
    expected = _records()
    for name, docs in stored.items():
        assert [from_dict(CLASSES[name], d) for d in docs] == expected[name], name


def _as_written_then(new: object, old: object) -> object:
    """``new`` cut down to the keys ``old`` has (fields added since are not part of the comparison)."""
    if isinstance(new, dict) and isinstance(old, dict):
        return {k: _as_written_then(new[k], old[k]) if k in new else new.get(k) for k in old}
    if isinstance(new, list) and isinstance(old, list) and len(new) == len(old):
        return [_as_written_then(n, o) for n, o in zip(new, old, strict=True)]
    return new


def test_to_dict_writes_what_main_wrote():
    # Every field the fixture's writer knew is written the same way; fields added since come on top.
    stored = json.loads(FIXTURE.read_text())
    for name, records in _records().items():
        written = [json.loads(json.dumps(to_dict(r))) for r in records]
        assert _as_written_then(written, stored[name]) == stored[name], name


def test_unknown_keys_are_ignored_and_missing_newer_fields_take_defaults():
    doc = copy.deepcopy(json.loads(FIXTURE.read_text())["RunResult"][0])
    doc["written_by"] = "a newer benchd"
    doc["results"][0]["latency"]["p9999_s"] = 0.01
    for key in ("issue_lag_p99_s", "telemetry", "latencies_file", "max_valid_qps"):
        del doc["results"][0][key]
    del doc["output_dir"]
    result = from_dict(RunResult, doc)
    first = result.results[0]
    assert first.issue_lag_p99_s is None and first.telemetry is None and first.latencies_file is None
    assert result.output_dir is None and first.latency.p99_s == 0.0021
    assert isinstance(first.energy, EnergyReport) and first.energy.energy_j == 1250.0
    assert first.invalid_reasons == ("bound missed",)  # lists come back as tuples


def test_comparison_plans_round_trip_through_json():
    spec = RunSpec(model="m", version="2", model_path="/c", scenarios=(ScenarioSettings(name="offline"),))
    plan = ComparisonPlan(
        candidate=spec, baseline=spec, trial_s=1.5, trial_queries=500, min_pairs=3, max_pairs=9,
        pairs_per_unit=2, time_cap_s=60.0, threshold=0.2, min_effect=None, thresholds={"p99_latency": 0.15},
        timeout_s=160.0, unit=3,
    )  # fmt: skip
    assert from_dict(ComparisonPlan, json.loads(json.dumps(to_dict(plan)))) == plan


def test_a_value_of_the_wrong_type_is_an_error_naming_the_field():
    doc = json.loads(FIXTURE.read_text())["RunSpec"][0]
    with pytest.raises(ValueError, match="batch_sizes"):
        from_dict(RunSpec, {**doc, "batch_sizes": ["eight"]})


def test_importing_records_does_not_import_pydantic():
    code = "import sys, benchd.records; print('pydantic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "False"
