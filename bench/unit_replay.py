"""Which per-unit estimator should the paired verdict use? Replayed on real units kept by verdict_power.py.

A verdict batch's statistic is one log ratio per unit (worker process): ``log(candidate / baseline)`` of the
metric's per-trial value, averaged over the unit's pairs. The units of a batch are independent (fresh
processes, load order swapped), so batches can be replayed by resampling units from the pool of real units
that ``bench/verdict_power.py --workdir DIR`` kept for each case, and every estimator can be tried on the
same units without running the models again.

For each case and estimator this replays ``--batches`` sequential batches as the daemon runs them (a look
after every unit from ``--min-units`` to ``--max-units``, Lan-DeMets spending, stop at the first decision,
threshold 10%, smallest reportable change 5%) and prints how often each state came out, the units used, the
median width of the final interval and, for the twins, its A/A coverage of 1.0. The twins' pool is
symmetrised (every unit also enters with its sign flipped: swapping the labels of identical versions is
exact), so coverage is measured against the true ratio 1.0.

    python bench/verdict_power.py --workdir /tmp/vp ...        # keeps the trials
    python bench/unit_replay.py /tmp/vp                         # replays them

Estimators: ``mean`` (Student's t over the units), ``trim10``, ``trim20``, ``trim25`` (Yuen's trimmed mean
with the winsorized standard error; ``benchd.analysis.sequential.trimmed_interval``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "daemon"))

from benchd.analysis.bootstrap import nearest_rank  # noqa: E402
from benchd.analysis.metrics import classify  # noqa: E402
from benchd.analysis.sequential import LookSchedule, trimmed_interval  # noqa: E402

ESTIMATORS = {"mean": 0.0, "trim10": 0.1, "trim20": 0.2, "trim25": 0.25}
QUANTILES = {"p99_latency": 99.0, "p50_latency": 50.0}
STATES = ("regressed", "unchanged", "improved", "inconclusive")


def percentile(latencies: np.ndarray, q: float) -> float:
    """The nearest-rank percentile ``q``, as the verdict computes a trial's value."""
    return float(np.sort(latencies)[int(nearest_rank(len(latencies), q)) - 1])


def unit_values(unit_dir: Path, q: float) -> float | None:
    """The unit's mean log ratio of its pairs' per-trial percentile ``q``; None when a pair is incomplete."""
    logs = []
    for base_file in sorted(unit_dir.glob("trial-*-baseline.npy")):
        cand_file = base_file.with_name(base_file.name.replace("baseline", "candidate"))
        if not cand_file.exists():
            return None
        base, cand = np.load(base_file), np.load(cand_file)
        logs.append(math.log(percentile(cand, q) / percentile(base, q)))
    return float(np.mean(logs)) if logs else None


def pools(workdir: Path, metric: str) -> dict[str, np.ndarray]:
    """Case name -> every real unit's log ratio of ``metric`` kept under ``workdir/runs``."""
    found: dict[str, list[float]] = {}
    for run in sorted((workdir / "runs").iterdir()):
        case = run.name.rsplit("-", 1)[0]
        for unit in sorted(run.glob("unit-*")):
            value = unit_values(unit, QUANTILES[metric])
            if value is not None:
                found.setdefault(case, []).append(value)
    return {case: np.array(values) for case, values in found.items()}


def replay(pool: np.ndarray, trim: float, schedule: LookSchedule, rng: np.random.Generator) -> tuple:
    """One sequential batch on units drawn from ``pool``: (state, units, low, high) in log space."""
    draws = rng.choice(pool, schedule.max_units)
    for n in range(schedule.min_units, schedule.max_units + 1):
        _, low, high = trimmed_interval(draws[:n], schedule, trim)
        state = classify(math.exp(low), math.exp(high), 0.10, 0.05, False)
        if state is not None or n == schedule.max_units:
            return state or "inconclusive", n, low, high
    raise AssertionError("unreachable")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("workdir", type=Path, help="a verdict_power.py --workdir")
    p.add_argument("--metric", choices=sorted(QUANTILES), default="p99_latency")
    p.add_argument("--batches", type=int, default=4000, help="replayed batches per case and estimator")
    p.add_argument("--min-units", type=int, default=4)
    p.add_argument("--max-units", type=int, default=18, help="units the time cap holds (18: 3 min here)")
    p.add_argument("--json", type=Path, help="write the table's rows here")
    args = p.parse_args(argv)
    schedule = LookSchedule(args.min_units, args.max_units)
    rng = np.random.default_rng(0)
    rows = []
    print(f"{args.metric}, looks after units {args.min_units}..{args.max_units}, {args.batches} batches each")
    print(f"{'case':8} {'units':>5} {'sd':>6}  {'estimator':9} " + " ".join(f"{s[:5]:>6}" for s in STATES)
          + f" {'units':>6} {'width':>6} {'A/A cov':>8}")  # fmt: skip
    for case, pool in pools(args.workdir, args.metric).items():
        real = len(pool)
        if case == "twins":
            pool = np.concatenate([pool, -pool])
        for name, trim in ESTIMATORS.items():
            results = [replay(pool, trim, schedule, rng) for _ in range(args.batches)]
            shares = {s: sum(r[0] == s for r in results) / args.batches for s in STATES}
            coverage = sum(r[2] <= 0.0 <= r[3] for r in results) / args.batches if case == "twins" else None
            width = float(np.median([math.exp(r[3]) / math.exp(r[2]) - 1.0 for r in results]))
            units = float(np.mean([r[1] for r in results]))
            rows.append({"case": case, "real_units": real, "estimator": name, **shares, "units": units,
                         "width": width, "coverage": coverage})  # fmt: skip
            cov = f"{coverage:8.3f}" if coverage is not None else f"{'':8}"
            state_cells = " ".join(f"{shares[s]:6.2f}" for s in STATES)
            sd = np.std(pool, ddof=1)
            print(f"{case:8} {real:5d} {sd:6.3f}  {name:9} {state_cells} {units:6.1f} {width:6.3f} {cov}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
