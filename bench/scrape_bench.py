"""Scrape cost of benchd's /metrics at tens of thousands of series vs prometheus_client.generate_latest.

Builds a synthetic results snapshot (default 100 models x 3 versions x 4 scenarios, every contract
metric, verdicts for 4 metrics per version), then times, on the same metrics:

* in process: ``MetricsExporter.scrape()`` (cached results + live part) vs ``generate_latest(registry)``
  over a registry holding the same collectors;
* over HTTP on 127.0.0.1, the way Prometheus asks (OpenMetrics, gzip): benchd's ``HTTPService`` vs
  ``prometheus_client.start_http_server`` on that registry, with 1 and with 10 concurrent scrapers.

    .venv/bin/python bench/scrape_bench.py            # full run, a few minutes on 2 cores
    .venv/bin/python bench/scrape_bench.py --quick    # smaller counts
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import multiprocessing
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from benchd.metrics.cache import MetricsExporter, ResultsCache
from benchd.metrics.health import DaemonStats, ScrapeStats, register_daemon_collectors
from benchd.metrics.names import DEFAULT_LATENCY_BUCKETS_S, PERCENTILES
from benchd.metrics.server import HTTPService, Route
from benchd.metrics.snapshot import (
    DeviceInfoSeries,
    EnergyTotal,
    ResultSeries,
    ResultsSnapshot,
    RunCount,
    VerdictSeries,
    VersionRole,
    histogram_from_latencies,
)

SCENARIOS = ("single_stream", "multi_stream", "server", "offline", "concurrency")
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


def synthetic_snapshot(models: int, versions: int, scenarios: int, seed: int = 0) -> ResultsSnapshot:
    rng = np.random.default_rng(seed)
    results, verdicts, counts, roles = [], [], [], []
    for m in range(models):
        model = f"model-{m:03d}"
        for v in range(1, versions + 1):
            for scenario in SCENARIOS[:scenarios]:
                latencies_ns = rng.lognormal(np.log(rng.uniform(1e6, 50e6)), 0.3, 2000)
                pct = np.percentile(latencies_ns / 1e9, [50, 90, 95, 99, 99.9])
                results.append(ResultSeries(
                    model=model, version=str(v), scenario=scenario, device="cuda:0", batch_size=1,
                    latency_percentiles_s=dict(zip(PERCENTILES, map(float, pct), strict=True)),
                    throughput_qps=float(rng.uniform(10, 5000)), throughput_sps=float(rng.uniform(10, 5000)),
                    run_timestamp_unix_s=1.7e9 + v * 3600, run_duration_s=float(rng.uniform(20, 60)),
                    histogram=histogram_from_latencies(latencies_ns, DEFAULT_LATENCY_BUCKETS_S),
                    energy_j=float(rng.uniform(100, 1000)), energy_per_sample_j=float(rng.uniform(0.01, 1)),
                    power_w={"mean": float(rng.uniform(100, 300)), "peak": float(rng.uniform(300, 400))},
                    throttled=bool(rng.random() < 0.05),
                ))  # fmt: skip
                if v > 1:
                    for metric in ("p99", "p50", "throughput", "energy"):
                        r = float(rng.uniform(0.9, 1.2))
                        state = "regressed" if r > 1.15 else "unchanged"
                        verdicts.append(VerdictSeries(model, str(v), str(v - 1), scenario, "cuda:0", 1,
                                                      metric, state, r, r - 0.04, r + 0.04))  # fmt: skip
        for scenario in SCENARIOS[:scenarios]:
            counts.append(RunCount(model, scenario, "ok", versions * 3))
        roles.append(VersionRole(model, str(versions), "candidate"))
        roles.append(VersionRole(model, str(versions - 1), "baseline"))
    return ResultsSnapshot(
        results=tuple(results), verdicts=tuple(verdicts), run_counts=tuple(counts),
        energy_totals=(EnergyTotal("cuda:0", 1.5e7),),
        devices=(DeviceInfoSeries("cuda:0", "NVIDIA H100 80GB HBM3", "GPU-0", "550.54.15", "h100-80gb"),),
        roles=tuple(roles), version_order={f"model-{m:03d}": tuple(str(v) for v in range(1, versions + 1))
                                           for m in range(models)},
    )  # fmt: skip


def summary_ms(samples_s: list[float]) -> dict[str, float]:
    ordered = sorted(samples_s)
    p99 = ordered[min(len(ordered) - 1, int(np.ceil(0.99 * len(ordered))) - 1)]
    return {"n": len(ordered), "median_ms": statistics.median(ordered) * 1e3, "p99_ms": p99 * 1e3}


def time_calls(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def http_scrape(port: int) -> tuple[float, bytes]:
    """One scrape as Prometheus asks (OpenMetrics, gzip) on a new connection: (seconds, raw body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        start = time.perf_counter()
        conn.request("GET", "/metrics", headers={"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"})
        resp = conn.getresponse()
        body = resp.read()
        elapsed = time.perf_counter() - start
        assert resp.status == 200, resp.status
        assert resp.getheader("Content-Encoding") == "gzip"
        return elapsed, body
    finally:
        conn.close()


def check_scrape(port: int) -> bool:
    """Whether the server answers a complete OpenMetrics exposition (also warms its gzip cache)."""
    _, body = http_scrape(port)
    return gzip.decompress(body).endswith(b"# EOF\n")


def concurrent_scrapes(port: int, scrapers: int, per_scraper: int) -> list[float]:
    results: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(per_scraper):
            t, _ = http_scrape(port)
            with lock:
                results.append(t)

    threads = [threading.Thread(target=worker) for _ in range(scrapers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--versions", type=int, default=3)
    parser.add_argument("--scenarios", type=int, default=4)
    parser.add_argument("--scrapes", type=int, default=300, help="benchd scrapes per measurement")
    parser.add_argument("--reference-scrapes", type=int, default=15, help="generate_latest scrapes")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    if args.quick:
        args.scrapes, args.reference_scrapes = 50, 4

    snapshot = synthetic_snapshot(args.models, args.versions, args.scenarios)
    scrape_stats = ScrapeStats()
    cache = ResultsCache(latest_versions=args.versions, scrape_stats=scrape_stats)
    render_s = time_calls(lambda: cache.update(snapshot), 3)
    live = CollectorRegistry()
    register_daemon_collectors(live, daemon_stats=DaemonStats(), scrape_stats=scrape_stats,
                               queue_depth=lambda: 0, version="bench")  # fmt: skip
    exporter = MetricsExporter(cache, live)
    reference = CollectorRegistry()  # the same metrics through prometheus_client's path
    reference.register(cache.collector)
    register_daemon_collectors(reference, daemon_stats=DaemonStats(), scrape_stats=scrape_stats,
                               queue_depth=lambda: 0, version="bench")  # fmt: skip

    body = exporter.scrape()
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    figures: dict[str, object] = {
        "series": series, "body_bytes": len(body),
        "body_gzip_bytes": len(exporter.scrape(openmetrics=True, gzipped=True)),
        "results_render_at_run_end": summary_ms(render_s),
    }  # fmt: skip
    print(f"{series} series, {len(body) / 1e6:.1f} MB text; results render at run end: "
          f"{figures['results_render_at_run_end']['median_ms']:.0f} ms")  # fmt: skip

    figures["in_process"] = {
        "benchd_scrape": summary_ms(time_calls(exporter.scrape, args.scrapes)),
        "generate_latest": summary_ms(time_calls(lambda: generate_latest(reference), args.reference_scrapes)),
    }
    figures["in_process_openmetrics_gzip"] = {
        "benchd_scrape": summary_ms(time_calls(lambda: exporter.scrape(True, True), args.scrapes)),
        "prometheus_client": summary_ms(time_calls(lambda: gzip.compress(generate_openmetrics(reference)),
                                                   args.reference_scrapes)),
    }  # fmt: skip

    service = HTTPService("127.0.0.1", 0, [Route("GET", "/metrics", exporter.handle)])
    service.start()
    ref_server, ref_thread = start_http_server(0, addr="127.0.0.1", registry=reference)
    ref_port = ref_server.server_address[1]
    # The scrapers run in another process, so client work does not compete with the server for the GIL.
    clients = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    try:
        for port in (service.port, ref_port):
            assert clients.submit(check_scrape, port).result()
        figures["http_1_scraper"] = {
            "benchd": summary_ms(clients.submit(concurrent_scrapes, service.port, 1, args.scrapes).result()),
            "prometheus_client": summary_ms(
                clients.submit(concurrent_scrapes, ref_port, 1, args.reference_scrapes).result()
            ),
        }
        per_scraper = max(1, args.scrapes // 10)
        ref_per_scraper = max(1, args.reference_scrapes // 10)
        figures["http_10_scrapers"] = {
            "benchd": summary_ms(clients.submit(concurrent_scrapes, service.port, 10, per_scraper).result()),
            "prometheus_client": summary_ms(
                clients.submit(concurrent_scrapes, ref_port, 10, ref_per_scraper).result()
            ),
        }
    finally:
        clients.shutdown()
        service.stop()
        ref_server.shutdown()
        ref_server.server_close()

    for name, group in figures.items():
        if not isinstance(group, dict) or "n" in group:
            continue
        fast = next(v for k, v in group.items() if k.startswith("benchd"))
        slow = next(v for k, v in group.items() if not k.startswith("benchd"))
        speedup = slow["median_ms"] / fast["median_ms"]
        group["speedup_median"] = speedup
        print(f"{name}:")
        for k, v in group.items():
            if isinstance(v, dict):
                print(f"  {k:32s} median {v['median_ms']:9.2f} ms  p99 {v['p99_ms']:9.2f} ms  (n={v['n']})")
        print(f"  speedup (median): {speedup:.0f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    main()
