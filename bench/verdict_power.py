"""How often does the paired verdict get it right, and what does it cost? Real verdicts on the CPU.

Builds model versions with known differences: a block of tanh(linear) applied 100 times (the block size chosen
so that takes ~1.5 ms here), and 103, 110 and 125 times for exactly +3%, +10% and +25% compute:

  twins     the same version twice                      goal: regressed <= 1%
  +3%       3% more compute everywhere                  goal: never regressed at t = 10%
  +10%      10% more compute                            goal: regressed >= 90% within 3 min per verdict
  +25%      25% more compute                            goal: regressed >= 90% within 1 min per verdict
  tail      every 20th query 3x slower (spin), median alone (reported: P99 should regress, p50 not)

then runs ``benchd.compare.run.compare`` on each case ``--repeats`` times and prints, per case, how often each
verdict (overall and P99 alone) came out, the pairs and benchmarking seconds each verdict cost, and the goal.
Whatever cannot be decided says ``inconclusive``; nothing passes silently.

    python bench/verdict_power.py --repeats 5               # trial 2 s, up to 40 pairs / 180 s per verdict
    python bench/verdict_power.py --repeats 2 --quick       # trial 1 s, up to 30 pairs / 60 s per verdict

The tail models are pickled (the class lives in this file; the worker imports it via PYTHONPATH).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

BENCH_DIR = Path(__file__).resolve().parent
TARGET_S = 1.5e-3


REPS = {"base": 100, "+3%": 103, "+10%": 110, "+25%": 125}
FEATURES = (32, 48, 64, 96, 128, 192, 256)


class RepeatedBlock(nn.Module):
    """``reps`` applications of one tanh(linear) block: compute exactly proportional to ``reps``.

    The tail kind (``every`` > 0) spins ``extra_s`` seconds more on every ``every``-th call: a slowdown of
    the tail that leaves the median alone. Weights are scaled so activations stay O(1) (no denormals).
    """

    def __init__(self, reps: int, features: int, every: int = 0, extra_s: float = 0.0) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(features, features)
        with torch.no_grad():
            self.lin.weight.mul_(2.0)
        self.reps = reps
        self.every = every
        self.extra_s = extra_s
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.reps):
            x = torch.tanh(self.lin(x))
        if self.every:
            self.calls += 1
            if self.calls % self.every == 0:
                end = time.perf_counter() + self.extra_s
                while time.perf_counter() < end:
                    pass
        return x


def _median_s(model: nn.Module, x: torch.Tensor, n: int) -> float:
    times = []
    with torch.inference_mode():
        for _ in range(n):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def _export(model: nn.Module, features: int, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    dims = ({0: torch.export.Dim("batch", min=1, max=4096)},)
    program = torch.export.export(model.eval(), (torch.rand(2, features),), dynamic_shapes=dims)
    torch.export.save(program, str(folder / "model.pt2"))
    _spec(folder, "model.pt2", features)
    return folder


def _spec(folder: Path, artifact: str, features: int) -> None:
    text = f"artifact: {artifact}\ninputs:\n  - {{name: x, shape: [batch, {features}], dtype: float32}}\n"
    (folder / "benchd.yaml").write_text(text)


def calibrate(root: Path) -> dict[str, float]:
    """Pick the block size whose 100-rep model (exported, one thread) takes closest to 1.5 ms."""
    torch.set_num_threads(1)
    best: tuple[float, int, float] | None = None
    for features in FEATURES:
        folder = _export(RepeatedBlock(REPS["base"], features), features, root / f"calib-{features}")
        module = torch.export.load(str(folder / "model.pt2")).module()
        x = torch.rand(1, features)
        _median_s(module, x, 30)
        t = sorted(_median_s(module, x, 100) for _ in range(3))[1]
        if best is None or abs(t - TARGET_S) < abs(best[0] - TARGET_S):
            best = (t, features, t)
        if t > TARGET_S:
            break
    assert best is not None
    return {"features": best[1], "base_s": best[2]}


def measured_ratios(folders: dict[str, Path], features: int, rounds: int = 8) -> dict[str, float]:
    """Median latency of each exported version over the base's, measured interleaved here."""
    modules = {k: torch.export.load(str(f / "model.pt2")).module() for k, f in folders.items()}
    x = torch.rand(1, features)
    meds: dict[str, list[float]] = {k: [] for k in modules}
    for _ in range(rounds):
        for k, m in modules.items():
            meds[k].append(_median_s(m, x, 60))
    mid = {k: sorted(v)[len(v) // 2] for k, v in meds.items()}
    return {k: mid[k] / mid["base"] for k in mid}


def write_cases(root: Path, features: int, base_s: float) -> tuple[dict[str, tuple[Path, Path, bool]], dict]:
    """Version folders for every case: name -> (baseline folder, candidate folder, allow_pickle)."""
    import verdict_power  # pickle the tail model as verdict_power.RepeatedBlock, importable by the worker

    folders = {k: _export(RepeatedBlock(r, features), features, root / f"reps{r}") for k, r in REPS.items()}
    tails = {}
    for name, every, extra_s in (("tail-base", 0, 0.0), ("tail", 20, 2.0 * base_s)):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        model = verdict_power.RepeatedBlock(REPS["base"], features, every, extra_s).eval()
        torch.save(model, folder / "model.pt")
        _spec(folder, "model.pt", features)
        tails[name] = folder
    cases = {
        "twins": (folders["base"], folders["base"], False),
        "+3%": (folders["base"], folders["+3%"], False),
        "+10%": (folders["base"], folders["+10%"], False),
        "+25%": (folders["base"], folders["+25%"], False),
        "tail": (tails["tail-base"], tails["tail"], True),
    }
    return cases, folders


GOALS = {
    "twins": ("regressed <= 1%", lambda c, n, t: c["regressed"] <= 0.01 * n),
    "+3%": ("never regressed", lambda c, n, t: c["regressed"] == 0),
    "+10%": ("regressed >= 90%, <= 180 s", lambda c, n, t: c["regressed"] >= 0.9 * n and t <= 180),
    "+25%": ("regressed >= 90%, <= 60 s", lambda c, n, t: c["regressed"] >= 0.9 * n and t <= 60),
    "tail": ("P99 regressed, p50 not", None),
}
STATES = ("regressed", "unchanged", "improved", "inconclusive")


def run_case(
    name: str, base: Path, cand: Path, pickle: bool, args: argparse.Namespace, out: Path
) -> list[dict]:
    from benchd.compare.run import compare, plan_comparison
    from benchd.config import BenchConfig, VerdictConfig
    from benchd.records import ScenarioSettings

    scenario = ScenarioSettings(
        warmup_queries=50, warmup_s=1.0, min_duration_s=args.trial_s, min_query_count=50
    )
    rows = []
    for i in range(args.repeats):
        bench = BenchConfig(scenarios=(scenario,), device="cpu", threads=1, allow_pickle=pickle, seed=i)
        verdict = VerdictConfig(trial_s=args.trial_s, min_pairs=args.min_pairs, max_pairs=args.max_pairs,
                                time_cap_s=args.time_cap_s)
        plan = plan_comparison(
            bench, verdict, model="bench", candidate_version=name, candidate_path=str(cand),
            baseline_version="base", baseline_path=str(base),
        ).replace(timeout_s=args.time_cap_s + 120)  # fmt: skip
        started = time.monotonic()
        outcome = compare(plan, out / f"{name}-{i}", env={"PYTHONPATH": str(BENCH_DIR)})
        if outcome.verdict is None:
            print(f"  {name} #{i}: ERROR {outcome.error_kind}: {outcome.error}", file=sys.stderr)
            rows.append({"state": "error", "p99": "error", "p50": "error", "pairs": 0, "benchmark_s": 0.0})
            continue
        by_metric = {m.metric: m for m in outcome.verdict.metrics}
        row = {
            "state": outcome.verdict.state,
            "p99": by_metric["p99_latency"].state,
            "p50": by_metric["p50_latency"].state,
            "p99_ratio": [by_metric["p99_latency"].ratio, by_metric["p99_latency"].ratio_low,
                          by_metric["p99_latency"].ratio_high],
            "p50_ratio": by_metric["p50_latency"].ratio,
            "p99_m": by_metric["p99_latency"].min_effect,
            "p50_m": by_metric["p50_latency"].min_effect,
            "pairs": outcome.inputs["pairs"],
            "benchmark_s": outcome.inputs["benchmark_s"],
            "wall_s": time.monotonic() - started,
        }  # fmt: skip
        rows.append(row)
        p99 = row["p99_ratio"]
        print(
            f"  {name} #{i}: {row['state']:<12} p99 {row['p99']:<12} "
            f"{p99[0]:.3f} [{p99[1]:.3f}, {p99[2]:.3f}] m={row['p99_m']:.2f}  "
            f"p50 {row['p50']:<12} {row['p50_ratio']:.3f} m={row['p50_m']:.2f}  "
            f"{row['pairs']} pairs, {row['benchmark_s']:.0f} s",
            file=sys.stderr,
            flush=True,
        )
    return rows


def summarise(results: dict[str, list[dict]]) -> str:
    header = ("case", "n", "regressed", "unchanged", "improved", "inconcl.", "P99 regr.", "p50 regr.",
              "pairs", "bench s (mean/max)", "goal", "met")  # fmt: skip
    lines = [header]
    for name, rows in results.items():
        n = len(rows)
        counts = {s: sum(r["state"] == s for r in rows) for s in STATES}
        max_s = max((r["benchmark_s"] for r in rows), default=0.0)
        mean_s = sum(r["benchmark_s"] for r in rows) / n if n else 0.0
        goal, check = GOALS[name]
        if check is None:
            met = all(r["p99"] == "regressed" and r["p50"] != "regressed" for r in rows)
        else:
            met = check(counts, n, max_s)
        lines.append((
            name, str(n), *(f"{counts[s]}/{n}" for s in STATES),
            f"{sum(r['p99'] == 'regressed' for r in rows)}/{n}",
            f"{sum(r['p50'] == 'regressed' for r in rows)}/{n}",
            f"{sum(r['pairs'] for r in rows) / n:.1f}" if n else "-", f"{mean_s:.0f}/{max_s:.0f}", goal,
            "yes" if met else "NO",
        ))  # fmt: skip
    widths = [max(len(r[i]) for r in lines) for i in range(len(header))]
    out = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--quick", action="store_true", help="1 s trials, at most 30 pairs / 60 s per verdict"
    )
    parser.add_argument("--cases", default="twins,+3%,+10%,+25%,tail")
    parser.add_argument("--json", help="write the raw rows here")
    parser.add_argument("--workdir", help="keep model versions and trials here")
    args = parser.parse_args()
    args.trial_s = 1.0 if args.quick else 2.0
    args.min_pairs = 6
    args.max_pairs = 30 if args.quick else 40
    args.time_cap_s = 60.0 if args.quick else 180.0
    sys.path.insert(0, str(BENCH_DIR))
    root = Path(args.workdir or tempfile.mkdtemp(prefix="benchd-verdict-power-"))
    t0 = time.monotonic()
    calib = calibrate(root / "calibration")
    features = int(calib["features"])
    cases, folders = write_cases(root / "models", features, calib["base_s"])
    ratios = measured_ratios(folders, features)
    print(
        f"calibration ({time.monotonic() - t0:.0f} s): block of {features} features, 100 reps take "
        f"{calib['base_s'] * 1e3:.2f} ms; reps {REPS}"
    )
    print(
        "  measured median ratios here: "
        + ", ".join(f"{k} {v:.3f}" for k, v in ratios.items() if k != "base")
    )
    results = {}
    for name in args.cases.split(","):
        base, cand, pickle = cases[name]
        print(f"case {name}:", file=sys.stderr, flush=True)
        results[name] = run_case(name, base, cand, pickle, args, root / "runs")
    print(
        f"\n{args.repeats} verdicts per case; trial {args.trial_s:g} s, "
        f"min {args.min_pairs} / max {args.max_pairs} pairs, time cap {args.time_cap_s:g} s, "
        "t = 10%, m = 5% (raised to the baseline's noise); one thread"
    )
    print(summarise(results))
    print(f"total {time.monotonic() - t0:.0f} s")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"calibration": calib, "ratios": ratios, "results": results}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
