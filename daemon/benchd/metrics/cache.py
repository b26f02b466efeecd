"""The /metrics body: the results part rendered once per run end, the live part on every scrape.

Results (everything derived from the store) change only when a run ends, so :class:`ResultsCache`
renders them then, in both formats, and a scrape only concatenates cached bytes with the small live
part (daemon health). With gzip, the cached part is compressed once too and the body is two gzip
members, which HTTP clients (Go's ``compress/gzip``, urllib3, Python's ``gzip``) read as one stream.
"""

from __future__ import annotations

import gzip
import logging
import threading
import time
from dataclasses import dataclass, field

from prometheus_client.registry import CollectorRegistry

from benchd.metrics.collectors import ResultsCollector
from benchd.metrics.health import ScrapeStats
from benchd.metrics.render import (
    OPENMETRICS_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    is_openmetrics_accepted,
    render_both,
    render_openmetrics,
    render_text,
)
from benchd.metrics.server import Request, Response
from benchd.metrics.snapshot import ResultsSnapshot

logger = logging.getLogger(__name__)

RESULTS_COLLECTOR_NAME = "results"
"""The ``collector`` label under which the results render is reported in the scrape stats."""

_GZIP_LEVEL = 6


@dataclass
class _Rendered:
    """One rendering of the results part; gzip members are made on first demand and kept."""

    text: bytes
    openmetrics: bytes
    samples: int
    _gzipped: dict[bool, bytes] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def body(self, openmetrics: bool, gzipped: bool) -> bytes:
        plain = self.openmetrics if openmetrics else self.text
        if not gzipped:
            return plain
        with self._lock:
            if openmetrics not in self._gzipped:
                self._gzipped[openmetrics] = gzip.compress(plain, compresslevel=_GZIP_LEVEL, mtime=0)
            return self._gzipped[openmetrics]


class ResultsCache:
    """The rendered results part of /metrics; re-rendered only by :meth:`update`.

    Args:
        latest_versions: export results and verdicts of only this many latest versions per model.
        scrape_stats: where each render's success and duration are recorded (collector ``results``).
    """

    def __init__(self, latest_versions: int = 3, scrape_stats: ScrapeStats | None = None) -> None:
        self._snapshot: ResultsSnapshot | None = None
        self._latest_versions = latest_versions
        self._collector = ResultsCollector(lambda: self._snapshot, latest_versions=latest_versions)
        self._scrape_stats = scrape_stats
        self._update_lock = threading.Lock()
        self._rendered = _Rendered(b"", b"", 0)

    @property
    def collector(self) -> ResultsCollector:
        """A collector over the cached snapshot (for a registry, ``get_sample_value`` or comparisons)."""
        return self._collector

    @property
    def snapshot(self) -> ResultsSnapshot | None:
        """The snapshot last given to :meth:`update` (None before the first)."""
        return self._snapshot

    @property
    def samples(self) -> int:
        """Number of samples in the cached results part."""
        return self._rendered.samples

    def update(self, snapshot: ResultsSnapshot) -> bool:
        """Render ``snapshot`` (call when a run ends); scrapes serve these bytes from now on.

        A failed render is logged and recorded in the scrape stats; scrapes keep serving the previous
        bytes, so a bad snapshot never takes /metrics down.

        Returns:
            True when the new snapshot is being served.
        """
        with self._update_lock:
            start = time.perf_counter()
            try:
                collector = ResultsCollector(lambda: snapshot, latest_versions=self._latest_versions)
                families = list(collector.collect())
                text, openmetrics = render_both(families)
                rendered = _Rendered(text, openmetrics, sum(len(f.samples) for f in families))
            except Exception:
                logger.exception("rendering the results metrics failed; serving the previous results")
                self._record(False, time.perf_counter() - start)
                return False
            self._snapshot = snapshot
            self._rendered = rendered
            self._record(True, time.perf_counter() - start)
            logger.debug("results metrics rendered: %d samples", rendered.samples)
            return True

    def body(self, openmetrics: bool = False, gzipped: bool = False) -> bytes:
        """Return the cached results part (OpenMetrics without ``# EOF``), gzip-compressed if asked."""
        return self._rendered.body(openmetrics, gzipped)

    def _record(self, success: bool, duration_s: float) -> None:
        if self._scrape_stats is not None:
            self._scrape_stats.record(RESULTS_COLLECTOR_NAME, success, duration_s)


class MetricsExporter:
    """Serve /metrics: cached results followed by the live registry, in the negotiated format.

    Args:
        results: the results cache.
        registry: the daemon's registry of live collectors (see ``register_daemon_collectors``); its
            metric names must not overlap the results part.
    """

    def __init__(self, results: ResultsCache, registry: CollectorRegistry) -> None:
        self._results = results
        self._registry = registry

    def scrape(self, openmetrics: bool = False, gzipped: bool = False) -> bytes:
        """Return one complete exposition (OpenMetrics ends with a single ``# EOF``)."""
        families = list(self._registry.collect())
        live = render_openmetrics(families, eof=True) if openmetrics else render_text(families)
        if gzipped:
            live = gzip.compress(live, compresslevel=_GZIP_LEVEL, mtime=0)
        return self._results.body(openmetrics, gzipped) + live

    def handle(self, request: Request) -> Response:
        """HTTP handler for ``GET /metrics``: negotiates OpenMetrics (``Accept``) and gzip."""
        openmetrics = is_openmetrics_accepted(request.header("accept"))
        gzipped = _accepts_gzip(request.header("accept-encoding"))
        headers = {"Content-Type": OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE}
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        headers["Vary"] = "Accept, Accept-Encoding"
        return Response(200, self.scrape(openmetrics, gzipped), headers)


def _accepts_gzip(accept_encoding: str) -> bool:
    """Whether an ``Accept-Encoding`` header lists gzip with q > 0."""
    for coding in accept_encoding.split(","):
        name, *params = coding.split(";")
        if name.strip().lower() != "gzip":
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        return q > 0
    return False
