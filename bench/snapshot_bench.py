"""What one exporter rebuild costs as the store grows: reading what is exported vs reading everything.

The daemon rebuilds its results snapshot at every run end (``SnapshotBuilder.build``). A real SQLite
store gets ``--versions`` versions spread over ``--models`` models, one run each with ``--queries`` raw
latencies; then two builders over the same store are timed side by side:

* ``exported``: the daemon's builder (``export.latest_versions``, default 3): it decodes only the exported
  versions' results and caches only their histograms;
* ``everything``: the same builder told to export every version (``latest_versions`` = all), which reads
  and caches every stored result, as a build did before it was bounded (the reference).

For each it prints the rows decoded and latency blobs read by the first build and by the build after one
more version, the histogram cache entries kept, the Python heap the builder holds (tracemalloc), and the
build times. The goal: the exported builder's reads, cache and heap stay flat as the store grows.

    .venv/bin/python bench/snapshot_bench.py                      # 2000 versions, 2 models
    .venv/bin/python bench/snapshot_bench.py --versions 10000     # a bigger store (minutes to fill)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.history.conftest import _run_result, _scenario_result, _spec  # noqa: E402

from benchd.history import SQLiteHistoryStore  # noqa: E402
from benchd.records import ModelVersion  # noqa: E402
from benchd.service.snapshots import SnapshotBuilder  # noqa: E402


class CountingStore(SQLiteHistoryStore):
    """The real store, counting the result rows decoded and the latency blobs read."""

    rows = 0
    blobs = 0

    def result_rows(self, *args, **kwargs):
        found = super().result_rows(*args, **kwargs)
        self.rows += len(found)
        return found

    def latencies(self, result_id: int) -> np.ndarray:
        self.blobs += 1
        return super().latencies(result_id)


def publish(store: SQLiteHistoryStore, model: str, version: str, latencies_ns: np.ndarray) -> None:
    store.record_version(ModelVersion(model, version, "local"))
    spec = _spec(model=model, version=version)
    run_id = store.enqueue_run(spec, force=True)
    store.claim_next_run("cpu")
    store.finish_run(run_id, _run_result(spec, (_scenario_result(),)), {0: latencies_ns})


def measure(store_path: str, latest_versions: int, add_version) -> dict[str, float]:
    store = CountingStore(store_path)
    try:
        tracemalloc.start()
        builder = SnapshotBuilder(store, latest_versions=latest_versions)
        started = time.perf_counter()
        builder.build()
        first_s = time.perf_counter() - started
        first = (store.rows, store.blobs)
        store.rows = store.blobs = 0
        add_version()
        started = time.perf_counter()
        snapshot = builder.build()
        next_s = time.perf_counter() - started
        heap_bytes = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        return {
            "first_rows": first[0], "first_blobs": first[1], "first_s": first_s,
            "next_rows": store.rows, "next_blobs": store.blobs, "next_s": next_s,
            "cached": len(builder.cached_result_ids), "heap_mib": heap_bytes / 2**20,
            "series": len(snapshot.results),
        }  # fmt: skip
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=2000)
    parser.add_argument("--models", type=int, default=2)
    parser.add_argument("--queries", type=int, default=2000, help="raw latencies stored per run")
    parser.add_argument("--latest-versions", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    latencies_ns = rng.lognormal(np.log(2e6), 0.3, args.queries).astype(np.int64)
    with tempfile.TemporaryDirectory(prefix="benchd-snapshot-bench-") as tmp:
        path = str(Path(tmp) / "benchd.sqlite")
        store = SQLiteHistoryStore(path)
        started = time.perf_counter()
        for i in range(args.versions):
            publish(store, f"m{i % args.models}", str(i // args.models + 1), latencies_ns)
        print(f"store: {args.versions} versions of {args.models} models, one run each with "
              f"{args.queries} latencies, filled in {time.perf_counter() - started:.1f} s")  # fmt: skip
        extra = iter(range(args.versions, args.versions + 2))

        def add_version() -> None:
            i = next(extra)
            publish(store, f"m{i % args.models}", str(i // args.models + 1), latencies_ns)

        results = {
            "exported": measure(path, args.latest_versions, add_version),
            "everything (reference)": measure(path, args.versions + 10, add_version),
        }
        store.close()
    print(f"{'builder':<24}{'rows 1st':>10}{'blobs 1st':>10}{'1st s':>8}{'rows next':>11}"
          f"{'blobs next':>11}{'next s':>8}{'cached':>8}{'heap MiB':>10}{'series':>8}")  # fmt: skip
    for name, r in results.items():
        print(f"{name:<24}{r['first_rows']:>10.0f}{r['first_blobs']:>10.0f}{r['first_s']:>8.3f}"
              f"{r['next_rows']:>11.0f}{r['next_blobs']:>11.0f}{r['next_s']:>8.3f}{r['cached']:>8.0f}"
              f"{r['heap_mib']:>10.1f}{r['series']:>8.0f}")  # fmt: skip
    print(f"goal: the exported builder reads and caches about {args.latest_versions} versions per model "
          "whatever the store holds; the reference grows with every version")  # fmt: skip


if __name__ == "__main__":
    main()
