"""APScheduler jobs: one polling job per registry (with backoff), optional cron re-runs of champions.

A poll records each new version in the store and enqueues its run *before* acknowledging it to the
watcher, so a crash between the two re-reports the version and the store's dedupe absorbs it: nothing is
missed, nothing runs twice. A failing job is logged and counted and never stops the loop.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from benchd.errors import RegistryError
from benchd.metrics.health import DaemonStats
from benchd.records import ModelVersion
from benchd.registry.base import PollCancelledError, RegistryWatcher

logger = logging.getLogger(__name__)

#: Priorities of queued runs: explicit requests first, then new versions, then cron re-runs.
PRIORITY_API = 100
PRIORITY_POLL = 50
PRIORITY_CRON = 10
MAX_BACKOFF_S = 300.0

EnqueueFn = Callable[[ModelVersion, int, str, bool], list[int]]


class PollJob:
    """Polls one watcher; after failures it waits exponentially longer (up to 5 minutes) between tries."""

    def __init__(
        self,
        watcher: RegistryWatcher,
        record: Callable[[ModelVersion], object],
        enqueue: EnqueueFn,
        stats: DaemonStats,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.watcher = watcher
        self.record = record
        self.enqueue = enqueue
        self.stats = stats
        self.interval_s = interval_s
        self.clock = clock
        self.failures = 0
        self.not_before = 0.0
        self.polled_once = threading.Event()
        self.last_error: str | None = None
        self._lock = threading.Lock()

    def __call__(self, force: bool = False) -> list[ModelVersion]:
        """Poll now (unless backing off); return the new versions found."""
        if not self._lock.acquire(blocking=False):
            return []  # a poll is already running (webhook and schedule at once)
        try:
            if not force and self.clock() < self.not_before:
                return []
            return self._poll()
        finally:
            self._lock.release()

    def _poll(self) -> list[ModelVersion]:
        name = self.watcher.name
        try:
            versions = self.watcher.pending()
            for mv in versions:
                self.record(mv)
                queued = self.enqueue(mv, PRIORITY_POLL, f"new version from registry {name}", False)
                logger.info(
                    "new version %s/%s in registry %s: %s",
                    mv.model,
                    mv.version,
                    name,
                    f"queued as run {', '.join(map(str, queued))}" if queued else "already queued or run",
                    extra={"event": "new_version", "registry": name, "model": mv.model, "version": mv.version,
                           "run_ids": queued},
                )  # fmt: skip
            self.watcher.ack(versions)
        except PollCancelledError as e:  # the daemon is stopping: not a registry failure
            logger.info("registry %s: poll abandoned: %s", name, e)
            return []
        except RegistryError as e:
            self._failed(str(e))
            return []
        except Exception as e:  # a bug in one watcher must not stop the others
            logger.exception("registry %s: poll crashed", name)
            self._failed(f"{type(e).__name__}: {e}")
            return []
        self.failures = 0
        self.not_before = 0.0
        self.last_error = None
        self.stats.record_poll(name, "ok")
        self.polled_once.set()
        return versions

    def _failed(self, message: str) -> None:
        self.failures += 1
        self.last_error = message
        backoff = min(MAX_BACKOFF_S, self.interval_s * 2 ** (self.failures - 1))
        self.not_before = self.clock() + backoff * random.uniform(0.8, 1.0)  # noqa: S311 - jitter only
        self.stats.record_poll(self.watcher.name, "error")
        self.polled_once.set()
        logger.warning(
            "registry %s: poll failed (%d in a row, next try in %.0f s): %s",
            self.watcher.name,
            self.failures,
            backoff,
            message,
            extra={"event": "poll_failed", "registry": self.watcher.name, "failures": self.failures,
                   "next_try_s": round(backoff, 1)},
        )  # fmt: skip


class Scheduler:
    """Owns the BackgroundScheduler and the jobs; :meth:`poll_now` lets a webhook speed a poll up."""

    def __init__(
        self,
        jobs: dict[str, PollJob],
        champion_cron: str | None = None,
        rerun_champions: Callable[[], None] | None = None,
    ) -> None:
        self.jobs = jobs
        self._scheduler = BackgroundScheduler(
            timezone=timezone.utc,
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 60},
        )
        for name, job in jobs.items():
            self._scheduler.add_job(
                job,
                "interval",
                seconds=job.interval_s,
                jitter=max(1, int(job.interval_s / 10)),
                id=f"poll:{name}",
                name=f"poll registry {name}",
                next_run_time=datetime.now(timezone.utc),
            )
        if champion_cron and rerun_champions is not None:
            self._scheduler.add_job(
                _guarded(rerun_champions, "champion re-run"),
                CronTrigger.from_crontab(champion_cron, timezone=timezone.utc),
                id="cron:champions",
                name="re-benchmark champions",
            )

    def start(self) -> None:
        """Start the background scheduler thread."""
        self._scheduler.start()

    def stop(self) -> None:
        """Stop scheduling; polls in progress are cancelled at their next request, then awaited."""
        for job in self.jobs.values():
            job.watcher.cancel()  # so shutdown never waits on a slow or misbehaving registry
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)

    def poll_now(self, registry: str | None = None) -> None:
        """Run the polling job of ``registry`` (all when None) as soon as possible."""
        for name, job in self.jobs.items():
            if registry is None or name == registry:
                threading.Thread(
                    target=job, kwargs={"force": True}, name=f"benchd-poll-{name}", daemon=True
                ).start()

    def ready(self) -> bool:
        """True once every registry has been polled at least once (successfully or not)."""
        return all(job.polled_once.is_set() for job in self.jobs.values())


def _guarded(fn: Callable[[], None], what: str) -> Callable[[], None]:
    def run() -> None:
        try:
            fn()
        except Exception:
            logger.exception("%s failed", what)

    return run
