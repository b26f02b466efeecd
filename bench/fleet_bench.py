"""Fleet coordination cost: claims per second and publish-to-claim time with 8 hosts on one PostgreSQL.

Two measurements, on a throwaway PostgreSQL cluster on 127.0.0.1 (tests/pg_server.py) unless ``--url``:

* ``store``: 8 processes (4 per hardware class) drain a queue of no-op runs through the store API, as a
  daemon's slot does (claim with a lease, one heartbeat, finish with a result): claims per second of the
  coordination layer itself, per-call latencies, and a check that no run was claimed twice.
* ``daemons``: 8 real ``benchd run`` processes (fake GPUs, 4 per class, a 0.5 ms no-op model) watching
  one local registry folder. Versions published one at a time (hosts idle) give publish-to-enqueue and
  enqueue-to-claim times; a burst of versions gives the daemons' claims per second (bounded by each run's
  worker process start, which imports torch).

    .venv/bin/python bench/fleet_bench.py                 # both, about 3 minutes on 2 cores
    .venv/bin/python bench/fleet_bench.py --mode store --runs 4000
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CLASSES = ("fake-a100-drv550", "fake-h100-drv550")


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    q = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else values * 99
    return {"p50_ms": q[49] * 1e3, "p99_ms": q[98] * 1e3, "max_ms": max(values) * 1e3}


def _store_worker(url: str, index: int, start_at: float, out: Any) -> None:
    from benchd.history import lease_owner, open_store
    from benchd.records import RunResult

    store = open_store(url, host=f"host-{index}", pool_max=2)
    cls = CLASSES[index % 2]
    owner = lease_owner(store.host, "cuda:0")
    claim_s, beat_s, finish_s, idle_s = [], [], [], []
    while time.time() < start_at:
        time.sleep(0.001)
    while True:
        t0 = time.perf_counter()
        run = store.claim_next_run("cuda:0", hardware_class=cls, owner=owner)
        t1 = time.perf_counter()
        if run is None:
            break
        claim_s.append(t1 - t0)
        store.heartbeat(run.id, owner)
        t2 = time.perf_counter()
        beat_s.append(t2 - t1)
        store.finish_run(run.id, RunResult(run.model, run.version, "cuda:0", "ok"), owner=owner)
        finish_s.append(time.perf_counter() - t2)
    for _ in range(50):  # what an idle slot's poll costs
        t0 = time.perf_counter()
        store.claim_next_run("cuda:0", hardware_class=cls, owner=owner)
        idle_s.append(time.perf_counter() - t0)
    out.put(
        {
            "index": index,
            "claims": len(claim_s),
            "claim": claim_s,
            "beat": beat_s,
            "finish": finish_s,
            "idle": idle_s,
            "end": time.time(),
        }
    )
    store.close()


def bench_store(url: str, processes: int, runs: int) -> dict[str, Any]:
    """Drain ``runs`` queued runs with ``processes`` processes; return throughput and latencies."""
    from benchd.history import open_store
    from benchd.records import RunSpec

    seed = open_store(url, host="seed")
    t0 = time.perf_counter()
    for i in range(runs):
        seed.enqueue_run(
            RunSpec(model="noop", version=str(i // 2), model_path="/x", device="cuda:0"),
            hardware_class=CLASSES[i % 2],
        )
    enqueue_s = time.perf_counter() - t0
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    start_at = time.time() + 3.0  # every process connected and waiting
    procs = [ctx.Process(target=_store_worker, args=(url, i, start_at, out)) for i in range(processes)]
    for p in procs:
        p.start()
    reports = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    wall_s = max(r["end"] for r in reports) - start_at
    done = seed.list_runs(state="ok", limit=runs + 10)
    report = {
        "processes": processes,
        "runs": runs,
        "enqueue_per_s": runs / enqueue_s,
        "claims_total": sum(r["claims"] for r in reports),
        "claims_per_process": sorted(r["claims"] for r in reports),
        "wall_s": wall_s,
        "claims_per_s": sum(r["claims"] for r in reports) / wall_s,
        "claim": _percentiles([x for r in reports for x in r["claim"]]),
        "heartbeat": _percentiles([x for r in reports for x in r["beat"]]),
        "finish": _percentiles([x for r in reports for x in r["finish"]]),
        "idle_claim": _percentiles([x for r in reports for x in r["idle"]]),
        "exactly_once": len(done) == runs and all(r.attempts == 1 for r in done),
    }
    seed.close()
    return report


def bench_daemons(url: str, daemons: int, spaced: int, burst: int, root: Path) -> dict[str, Any]:
    """Run ``daemons`` benchd processes; publish ``spaced`` versions 4 s apart, then ``burst`` at once."""
    import psycopg
    from tests.conftest import write_model
    from tests.fleet.conftest import Fleet

    model = write_model(root / "noop-model", "sleep", sleep_s=0.0005)
    fleet = Fleet(root / "fleet", url)
    try:
        for i in range(daemons):
            fleet.add(f"host-{i}", "A100" if i % 2 == 0 else "H100", lease_s=30.0)
        for d in fleet.daemons.values():
            d.start(ready_timeout_s=120)
        published: dict[str, float] = {}
        for i in range(spaced):
            version = f"s{i}"
            published[version] = time.time()
            fleet.publish(model, "noop", version)
            time.sleep(4.0)
        burst_start = time.time()
        for i in range(burst):
            version = f"b{i}"
            published[version] = time.time()
            fleet.publish(model, "noop", version)
        want = (spaced + burst) * 2
        deadline = time.time() + 900
        while time.time() < deadline:
            with psycopg.connect(url, autocommit=True) as conn:
                rows = conn.execute(
                    "SELECT version, hardware_class, state, enqueued_unix_s, started_unix_s, ended_unix_s, "
                    "host FROM runs"
                ).fetchall()
            if len(rows) == want and all(r[2] not in ("queued", "running") for r in rows):
                break
            time.sleep(0.5)
    finally:
        fleet.close()
    spaced_rows = [r for r in rows if r[0].startswith("s")]
    burst_rows = [r for r in rows if r[0].startswith("b")]
    burst_claims_s = max(r[4] for r in burst_rows) - burst_start if burst_rows else float("nan")
    return {
        "daemons": daemons,
        "runs": len(rows),
        "states": sorted({r[2] for r in rows}),
        "per_key_max": max(
            sum(1 for r in rows if (r[0], r[1]) == key) for key in {(r[0], r[1]) for r in rows}
        ),
        "idle_publish_to_enqueue": _percentiles([r[3] - published[r[0]] for r in spaced_rows]),
        "idle_enqueue_to_claim": _percentiles([r[4] - r[3] for r in spaced_rows]),
        "idle_publish_to_claim": _percentiles([r[4] - published[r[0]] for r in spaced_rows]),
        "burst_runs": len(burst_rows),
        "burst_claims_per_s": len(burst_rows) / burst_claims_s,
        "burst_mean_run_s": statistics.mean(r[5] - r[4] for r in burst_rows),
        "runs_per_host": {h: sum(1 for r in rows if r[6] == h) for h in sorted({r[6] for r in rows})},
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark(s) and print a JSON report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=("store", "daemons", "both"), default="both")
    parser.add_argument("--url", help="an existing PostgreSQL database (default: a throwaway cluster)")
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--spaced", type=int, default=6, help="versions published 4 s apart (daemons)")
    parser.add_argument("--burst", type=int, default=12, help="versions published at once (daemons)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))  # tests.pg_server, tests.fleet.conftest
    from tests.pg_server import running_pg_server

    report: dict[str, Any] = {}
    with running_pg_server() as server, tempfile.TemporaryDirectory(prefix="benchd-fleet-") as tmp:
        if args.mode in ("store", "both"):
            url = args.url or server.create_database("bench_store")
            report["store"] = bench_store(url, args.processes, args.runs)
            print(json.dumps({"store": report["store"]}, indent=1), flush=True)  # noqa: T201
        if args.mode in ("daemons", "both"):
            url = args.url or server.create_database("bench_daemons")
            report["daemons"] = bench_daemons(url, args.processes, args.spaced, args.burst, Path(tmp))
            print(json.dumps({"daemons": report["daemons"]}, indent=1), flush=True)  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
