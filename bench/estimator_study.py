"""Which interval should a P99 verdict use? A/A coverage first, width second, on kept real trials.

Step 1 (``--collect``): run a pool of A/A worker processes on this machine: the same version on both sides,
``--units`` fresh processes of ``--pairs`` interleaved pairs each (load order swapped between processes),
trials sized as the verdict sizes them. Every trial's raw latencies are kept (``pool.npz``).

Step 2 (always): cut the pool into many A/A batches and compute, for each estimator, how often its 95%
interval covers 1.0 (the truth: the sides are identical) for P99 and p50, and how wide it is. Batches are
built three ways, each with the same number of pairs:

  one-process   every pair from one worker process          (what a batch did before: one process)
  k=1           one pair from each of several processes     (the design benchd now uses by default)
  k=2           two pairs from each of half as many         (fewer process starts)

Estimators:
  boot-pairs+queries  bootstrap over pairs, queries resampled inside each trial, ratio of means, expanded
                      percentile interval (benchd's former estimator)
  boot-pairs          bootstrap over pairs only
  t-pairs             t interval over per-pair log ratios (each pair its own unit)
  t-units             t interval over per-process mean log ratios (the unit is the worker process)

    python bench/estimator_study.py --collect --units 40 --pairs 4 --out /tmp/pool      # ~20 min here
    python bench/estimator_study.py --out /tmp/pool --batch-pairs 12                   # re-analyse
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.special import stdtrit

BENCH_DIR = Path(__file__).resolve().parent


def collect(out: Path, units: int, pairs: int, trial_queries: int) -> None:
    """Run the A/A pool with benchd's comparison worker and keep every trial."""
    sys.path.insert(0, str(BENCH_DIR))
    from verdict_power import calibrate_block, write_cases

    from benchd.compare.run import compare, plan_comparison
    from benchd.config import BenchConfig, VerdictConfig
    from benchd.records import ScenarioSettings
    from benchd.runner.cpus import others, pin_process

    calib = calibrate_block(out / "calibration")
    cases, _ = write_cases(out / "models", int(calib["features"]), calib["base_s"])
    base, _, _ = cases["twins"]
    scenario = ScenarioSettings(warmup_queries=50, warmup_s=0.5, min_duration_s=1.0, min_query_count=50)
    bench = BenchConfig(scenarios=(scenario,), device="cpu", threads=1, cpu_set="auto")
    verdict = VerdictConfig(
        trial_s=1.0, min_pairs=2, max_pairs=units * pairs, pairs_per_process=pairs, time_cap_s=86400,
        trial_queries=trial_queries,
    )  # fmt: skip
    plan = plan_comparison(
        bench, verdict, model="study", candidate_version="a", candidate_path=str(base),
        baseline_version="a", baseline_path=str(base),
    ).replace(stop_when_decided=False, timeout_s=1e6)  # fmt: skip
    pin_process(others(plan.candidate.cpus))
    started = time.monotonic()
    outcome = compare(plan, out / "pool")
    if outcome.verdict is None:
        raise SystemExit(f"the pool failed: {outcome.error_kind}: {outcome.error}")
    arrays, meta = {}, []
    for i, t in enumerate(outcome.inputs["trials"]):
        arrays[f"t{i}"] = np.load(t["latencies_file"])
        meta.append({"unit": t["unit"], "pair": t["pair_index"], "side": t["side"]})
    np.savez_compressed(out / "pool.npz", **arrays)
    (out / "pool.json").write_text(json.dumps({"trials": meta, "calibration": calib,
                                               "wall_s": time.monotonic() - started,
                                               "unit_log": outcome.inputs["unit_log"]}))  # fmt: skip
    print(f"pool: {units} processes x {pairs} pairs in {time.monotonic() - started:.0f} s -> {out}")


def load_pool(out: Path) -> dict[tuple[int, int], dict[str, np.ndarray]]:
    """``{(unit, pair): {"baseline": latencies_s, "candidate": latencies_s}}``."""
    meta = json.loads((out / "pool.json").read_text())["trials"]
    data = np.load(out / "pool.npz")
    pool: dict[tuple[int, int], dict[str, np.ndarray]] = {}
    for i, m in enumerate(meta):
        pool.setdefault((m["unit"], m["pair"]), {})[m["side"]] = (
            np.sort(data[f"t{i}"]).astype(np.float64) * 1e-9
        )
    return {k: v for k, v in pool.items() if len(v) == 2}


def pct(sorted_s: np.ndarray, q: float) -> float:
    return float(sorted_s[max(1, math.ceil(q / 100 * len(sorted_s))) - 1])


def t_interval(values: np.ndarray) -> tuple[float, float]:
    n = len(values)
    half = stdtrit(n - 1, 0.975) * np.std(values, ddof=1) / math.sqrt(n)
    mean = float(np.mean(values))
    return math.exp(mean - half), math.exp(mean + half)


def boot_interval(base: list[np.ndarray], cand: list[np.ndarray], q: float, rng: np.random.Generator,
                  queries: bool, n_boot: int = 1000) -> tuple[float, float]:  # fmt: skip
    sys.path.insert(0, str(BENCH_DIR.parent / "daemon"))
    from benchd.analysis.bootstrap import SortedGroups, interval

    n = len(base)
    idx = rng.integers(0, n, size=(n_boot, n))
    if queries:
        gb, gc = SortedGroups.pack(base), SortedGroups.pack(cand)
        b = gb.resampled_percentile(q, idx, rng).mean(axis=1)
        c = gc.resampled_percentile(q, idx, rng).mean(axis=1)
    else:
        vb = np.array([pct(x, q) for x in base])
        vc = np.array([pct(x, q) for x in cand])
        b, c = vb[idx].mean(axis=1), vc[idx].mean(axis=1)
    return interval(c / b, n)


def batches(pool: dict, design: str, batch_pairs: int, rng: np.random.Generator, count: int) -> list[list]:
    """``count`` batches of ``batch_pairs`` pairs as ``[(unit, pair), ...]`` for one design."""
    by_unit: dict[int, list[tuple[int, int]]] = {}
    for key in sorted(pool):
        by_unit.setdefault(key[0], []).append(key)
    units = sorted(by_unit)
    out = []
    for _ in range(count):
        if design == "one-process":
            fits = [u for u in units if len(by_unit[u]) >= batch_pairs]
            if not fits:
                return []
            u = fits[rng.integers(len(fits))]
            out.append(by_unit[u][:batch_pairs])
            continue
        k = 1 if design == "k=1" else 2
        chosen = rng.choice(units, size=batch_pairs // k, replace=False)
        out.append(
            [by_unit[u][j] for u in chosen for j in rng.choice(len(by_unit[u]), size=k, replace=False)]
        )
    return out


def evaluate(pool: dict, batch_pairs: int, count: int, seed: int) -> list[tuple[str, ...]]:
    rng = np.random.default_rng(seed)
    rows = []
    for design in ("one-process", "k=1", "k=2"):
        chosen = batches(pool, design, batch_pairs, rng, count)
        if not chosen:
            continue
        for estimator in ("boot-pairs+queries", "boot-pairs", "t-pairs", "t-units"):
            for metric, q in (("p99", 99.0), ("p50", 50.0)):
                cover, widths = 0, []
                for batch in chosen:
                    base = [pool[k]["baseline"] for k in batch]
                    cand = [pool[k]["candidate"] for k in batch]
                    if estimator.startswith("boot"):
                        low, high = boot_interval(base, cand, q, rng, queries="queries" in estimator)
                    else:
                        logs = np.array(
                            [math.log(pct(c, q) / pct(b, q)) for b, c in zip(base, cand, strict=True)]
                        )
                        if estimator == "t-units":
                            units = [k[0] for k in batch]
                            logs = np.array(
                                [logs[[u == v for v in units]].mean() for u in dict.fromkeys(units)]
                            )
                            if len(logs) < 2:
                                continue
                        low, high = t_interval(logs)
                    cover += low <= 1.0 <= high
                    widths.append(math.sqrt(high / low) - 1.0)
                n = len(widths)
                if n:
                    rows.append((design, estimator, metric, f"{cover}/{n}", f"{cover / n:.0%}",
                                 f"+/-{np.median(widths):.1%}"))  # fmt: skip
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collect", action="store_true", help="run the A/A pool first")
    parser.add_argument("--out", help="the pool's folder [default: a new temp folder]")
    parser.add_argument("--units", type=int, default=40, help="worker processes in the pool")
    parser.add_argument("--pairs", type=int, default=4, help="pairs per process in the pool")
    parser.add_argument("--trial-queries", type=int, default=2000)
    parser.add_argument("--batch-pairs", type=int, default=12, help="pairs per A/A batch in the analysis")
    parser.add_argument("--batches", type=int, default=300, help="A/A batches per design")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="benchd-estimator-study-"))
    out.mkdir(parents=True, exist_ok=True)
    if args.collect:
        collect(out, args.units, args.pairs, args.trial_queries)
    pool = load_pool(out)
    units = len({k[0] for k in pool})
    p99_cv = np.std([pct(v["baseline"], 99) for v in pool.values()], ddof=1) / np.mean(
        [pct(v["baseline"], 99) for v in pool.values()]
    )
    print(f"pool {out}: {len(pool)} A/A pairs in {units} processes; per-trial P99 CV {p99_cv:.1%}")
    rows = evaluate(pool, args.batch_pairs, args.batches, args.seed)
    header = ("batch design", "estimator", "metric", "covers 1.0", "coverage", "median half-width")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print(
        f"{args.batches} A/A batches of {args.batch_pairs} pairs per design, drawn from the pool "
        f"(seed {args.seed})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
