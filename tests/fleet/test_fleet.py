"""A simulated fleet: 4 daemons (2 per hardware class) on one PostgreSQL; every (version, class) runs once.

One daemon is killed with ``kill -9`` mid-run: its run is taken over by the other host of its class once
the lease (3 s, heartbeat 1 s) expires, and no (version, class) runs twice.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from tests.daemon.conftest import wait_until
from tests.fleet.conftest import CLASSES

VERSIONS = [str(v) for v in range(1, 21)]
TERMINAL = ("ok", "failed", "timeout", "invalid", "interrupted")


def _rows(url: str, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    import psycopg  # the postgres extra; imported here so collection never needs it

    with psycopg.connect(url, autocommit=True) as conn:
        return [tuple(r) for r in conn.execute(sql, args).fetchall()]


def test_every_version_runs_once_per_hardware_class_despite_a_kill_9(fleet_factory, fleet_db, noop_model):
    fleet = fleet_factory(fleet_db)
    hosts = {"a1": "A100", "a2": "A100", "h1": "H100", "h2": "H100"}
    for host, gpu in hosts.items():
        fleet.add(host, gpu)
    for daemon in fleet.daemons.values():
        daemon.start()
    for version in VERSIONS:
        fleet.publish(noop_model, "noop", version)

    # kill -9 the first A100 host while it holds a run, and remember that run
    victim = wait_until(
        lambda: _rows(fleet_db, "SELECT id, host FROM runs WHERE state = 'running' AND host = 'a1'"),
        60,
        "a1 to be running a run",
        interval_s=0.02,
    )[0]
    fleet.daemons["a1"].kill9()
    killed_s = time.time()

    def all_done() -> list[tuple[Any, ...]] | None:
        rows = _rows(fleet_db, "SELECT version, hardware_class, state FROM runs")
        done = [r for r in rows if r[2] in TERMINAL]
        return rows if len(done) >= len(VERSIONS) * len(CLASSES) and len(done) == len(rows) else None

    try:
        # CPU-bound on small machines: each run starts a worker process that imports torch (~2 CPU-s)
        runs = wait_until(all_done, 180, "every (version, class) to finish", interval_s=0.5)
    except AssertionError as e:
        states = _rows(fleet_db, "SELECT host, state, COUNT(*) FROM runs GROUP BY host, state ORDER BY 1, 2")
        logs = "\n".join(f"--- {n}\n{d.log()[-1500:]}" for n, d in fleet.daemons.items())
        raise AssertionError(f"{e}: runs by (host, state) {states}\n{logs}") from e

    # exactly once per (version, class): one run row each, all ok, none twice
    per_key = Counter((v, c) for v, c, _ in runs)
    expected = {(v, c) for v in VERSIONS for c in CLASSES.values()}
    assert set(per_key) == expected
    assert max(per_key.values()) == 1
    assert {s for _, _, s in runs} == {"ok"}
    results = Counter(_rows(fleet_db, "SELECT version, hardware_class FROM results WHERE model = 'noop'"))
    assert set(results) == expected and max(results.values()) == 1

    # each class ran only on its own hosts, and each result carries the class it ran on
    for host, cls, rcls in _rows(
        fleet_db,
        "SELECT r.host, r.hardware_class, s.hardware_class FROM runs r JOIN results s ON s.run_id = r.id",
    ):
        assert cls == rcls == CLASSES[hosts[host]]

    # the killed host's run was taken over by the other A100 host after the lease expired
    run_id = victim[0]
    host, attempts, started_s, state = _rows(
        fleet_db, "SELECT host, attempts, started_unix_s, state FROM runs WHERE id = %s", (run_id,)
    )[0]
    assert (host, attempts, state) == ("a2", 2, "ok")
    assert started_s >= killed_s + 1.0  # not before the 3 s lease (renewed up to 1 s before the kill) ran out
    assert started_s < killed_s + 15.0
    # the survivors shared the work within each class
    per_host = Counter(h for (h,) in _rows(fleet_db, "SELECT host FROM runs"))
    assert per_host["h1"] > 0 and per_host["h2"] > 0 and per_host["a2"] > 0

    # each host exports only its own runs (Prometheus sums hosts)
    exported = 0
    for name in ("a2", "h1", "h2"):
        status, text = fleet.daemons[name].get("/metrics")
        assert status == 200
        ok = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("benchd_runs_total{") and 'outcome="ok"' in line
        )
        assert ok == per_host[name]
        exported += ok
    assert exported == len(expected) - per_host["a1"]
