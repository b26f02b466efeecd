"""Wiring only: build every part of the daemon from its config, start it, stop it.

Start-up order matters for the safety of a daemon already running (:mod:`benchd.service.lifecycle`):
the data-dir lock before anything else, the HTTP port bound before recovery, and stale workers killed
only once identified by pid, start time and command line (:func:`benchd.runner.procs.kill_stale_workers`).
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from benchd.config import DaemonConfig
from benchd.devices import open_devices
from benchd.devices.fingerprint import host_fingerprint
from benchd.devices.meter import WindowSampler, retention_s
from benchd.history import HistoryStore, HostView, ScopedCursorStore, open_store
from benchd.metrics.cache import MetricsExporter, ResultsCache
from benchd.metrics.health import DaemonStats, ScrapeStats, register_daemon_collectors
from benchd.metrics.server import HTTPService, Route
from benchd.metrics.snapshot import DeviceInfoSeries
from benchd.records import ModelVersion, RunResult, RunSpec
from benchd.redaction import redact_url
from benchd.registry.factory import build_watchers
from benchd.runner.cpus import configured_cpus, others, pin_process
from benchd.runner.launch import WorkerLimits
from benchd.runner.procs import kill_stale_workers
from benchd.service.api import API
from benchd.service.lifecycle import (
    DataDirLock,
    PeriodicTask,
    StartupError,
    bind_error,
    check_writable,
    one_line,
)
from benchd.service.recording import RetryPolicy
from benchd.service.scheduler import PollJob, Scheduler
from benchd.service.slots import Slot, SlotWorker
from benchd.service.snapshots import ExportSource, SnapshotBuilder
from benchd.service.verdicts import VerdictMaker
from benchd.version import __version__

logger = logging.getLogger(__name__)


class BenchdApp:
    """The daemon: store, devices, watchers, scheduler, device slots, exporter and HTTP server.

    Every part takes its settings from ``config``: the workers' limits (``workers:``), how long a run's
    end is retried while the store fails (``store.record_retry``), when a run still ``running`` past its
    timeout is failed (``runs:``), the HTTP server's bounds (``http:``), the telemetry kept
    (``devices.telemetry_retention``) and what is exported (``export:``).

    Args:
        config: the daemon config.

    Raises:
        StartupError: another daemon holds the data dir, or it is not writable.
        HistoryStoreError: the store cannot be opened.
    """

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.data_dir = Path(config.data_dir)
        self.lock = DataDirLock(self.data_dir).acquire()  # before anything else touches the data dir
        try:
            self._build(config)
        except BaseException:
            self.lock.release()
            raise
        self.stuck_grace_s = config.runs.stuck_grace_s
        self.stuck_check = PeriodicTask(
            "stuck-runs", config.runs.stuck_check_interval_s, self.fail_stuck_runs
        )
        self.started = threading.Event()

    def _build(self, config: DaemonConfig) -> None:
        worker_limits = WorkerLimits.from_config(config.workers)
        record_retry = RetryPolicy(
            result_window_s=config.store.record_retry_s, max_delay_s=config.store.record_retry_max_delay_s
        )
        self.runs_dir = self.data_dir / "runs"
        check_writable(self.runs_dir)
        self.store: HistoryStore = open_store(config.store.url)
        self.devices = open_devices(
            mode=config.devices.mode, require_gpu=config.devices.require_gpu, fake=config.devices.fake
        )
        retain_s = retention_s(config.benchmark.timeout_s, config.devices.telemetry_retention_s)
        self.sampler = WindowSampler(self.devices, retain_s=retain_s)
        self.slots = self._slots()
        # fleet: hosts of one hardware class share registry cursors, other classes keep their own
        cursors = ScopedCursorStore(self.store, self._fleet_scope()) if self.store.shared else self.store
        self.watchers = {w.name: w for w in build_watchers(config, cursor_store=cursors)}
        self.stats = DaemonStats()
        self.wakeup = threading.Condition()
        exported: ExportSource = (
            HostView(self.store, self.store.host or "") if self.store.shared else self.store
        )
        self.snapshots = SnapshotBuilder(
            exported,
            config.export.latency_buckets_s,
            self._device_info(),
            latest_versions=config.export.latest_versions,
            change_point_runs=config.export.change_point_runs,
            change_point_min_magnitude=config.export.change_point_min_magnitude,
        )
        scrape_stats = ScrapeStats()
        self.results_cache = ResultsCache(config.export.latest_versions, scrape_stats)
        self.registry = CollectorRegistry(auto_describe=True)
        register_daemon_collectors(
            self.registry,
            daemon_stats=self.stats,
            scrape_stats=scrape_stats,
            queue_depth=self.store.queue_depth,
            version=__version__,
            run_states=self.store.run_state_counts,
        )
        self.exporter = MetricsExporter(self.results_cache, self.registry)
        jobs = {
            name: PollJob(
                w,
                self.store.record_version,
                self._enqueue_poll,
                self.stats,
                self._registry_config(name).poll_interval_s,
            )
            for name, w in self.watchers.items()
        }
        self.scheduler = Scheduler(jobs, config.champion_cron, self.rerun_champions)
        self.api = API(
            config, self.store, self.scheduler, self.enqueue, self.find_version, self.ready, self.is_busy
        )
        self.http = HTTPService(
            config.http.host,
            config.http.port,
            [Route("GET", "/metrics", self.exporter.handle), *self.api.routes()],
            max_body_bytes=config.http.max_body_bytes,
            request_timeout_s=config.http.idle_timeout_s,
            header_timeout_s=config.http.header_timeout_s,
            max_connections=config.http.max_connections,
            workers=config.http.workers,
            priority_workers=config.http.probe_workers,
            max_queued=config.http.max_queued,
        )
        self.workers = [
            SlotWorker(
                slot,
                self.store,
                self.watchers,
                self.runs_dir,
                meter=self.sampler,
                fingerprint=self.fingerprint,
                after_run=self.after_run,
                wakeup=self.wakeup,
                limits=worker_limits,
                retry=record_retry,
            )
            for slot in self.slots
        ]
        self._fingerprints: dict[str, dict[str, Any]] = {}
        self.verdicts = VerdictMaker(
            self.store,
            self.watchers,
            config.benchmark,
            config.verdict,
            self.runs_dir,
            meter=self.sampler,
            fingerprint=self.fingerprint,
            torch_device=self._torch_device,
            calibration_batches=config.verdict.calibration_batches,
            limits=worker_limits,
        )
        self.worker_cpus = configured_cpus(config.benchmark.cpu_set, config.benchmark.threads)

    # ------------------------------------------------------------------ building blocks
    def _registry_config(self, name: str) -> Any:
        return next(r for r in self.config.registries if r.name == name)

    def _slots(self) -> list[Slot]:
        fake = self.config.devices.mode == "fake"
        gpus = [f"cuda:{i}" for i in range(len(self.devices))]
        if not gpus:
            return [Slot("cpu", "cpu")]
        wanted = self.config.benchmark.device
        if wanted.startswith("cuda:"):
            gpus = [g for g in gpus if g == wanted] or gpus[:1]
        elif wanted == "cpu":
            return [Slot("cpu", "cpu")]
        return [Slot(g, "cpu" if fake else g) for g in gpus]

    def _device_info(self) -> tuple[DeviceInfoSeries, ...]:
        out = []
        for slot in self.slots:
            fp = host_fingerprint(self.devices, slot.name)
            out.append(
                DeviceInfoSeries(
                    slot.torch_device if slot.name == "cpu" else slot.name,
                    str(fp.get("device_name") or ""),
                    str(fp.get("device_uuid") or ""),
                    str(fp.get("driver_version") or ""),
                    str(fp.get("hardware_class") or ""),
                )
            )
        return tuple(out)

    def _fleet_class(self, slot: str) -> str | None:
        """The hardware class a fleet (shared store) queues a slot's runs under; None on a single host."""
        return str(host_fingerprint(self.devices, slot)["hardware_class"]) if self.store.shared else None

    def _fleet_scope(self) -> str:
        return "+".join(sorted({str(self._fleet_class(s.name)) for s in self.slots}))

    def fingerprint(self, slot: str) -> dict[str, Any]:
        """The hardware fingerprint of a slot's device (cached: it does not change while running)."""
        if slot not in self._fingerprints:
            self._fingerprints[slot] = host_fingerprint(self.devices, slot)
        return self._fingerprints[slot]

    # ------------------------------------------------------------------ queue
    def spec_for(self, mv: ModelVersion, slot: Slot, baseline: str | None = None) -> RunSpec:
        """The RunSpec that benchmarks ``mv`` on ``slot`` with the configured settings."""
        registry = next((r for r in self.config.registries if r.name == mv.registry), None)
        return self.config.benchmark.run_spec(
            model=mv.model,
            version=mv.version,
            model_path=mv.path,
            device=slot.name,
            allow_pickle=bool(registry and registry.allow_pickle),
            allow_native_code=bool(registry and registry.allow_native_code),
            cpus=self.worker_cpus,
            baseline=baseline,
        )

    def enqueue(
        self, mv: ModelVersion, priority: int, reason: str, force: bool, baseline: str | None = None
    ) -> list[int]:
        """Queue ``mv`` on the benchmark slot(s); return the new run ids (empty when deduplicated)."""
        ids = []
        for slot in (
            self.slots[:1] if len(self.slots) > 1 and self.config.benchmark.device == "auto" else self.slots
        ):
            run_id = self.store.enqueue_run(
                self.spec_for(mv, slot, baseline),
                priority=priority,
                reason=reason,
                force=force,
                hardware_class=self._fleet_class(slot.name),
            )
            if run_id is not None:
                ids.append(run_id)
        if ids:
            with self.wakeup:
                self.wakeup.notify_all()
        return ids

    def _enqueue_poll(self, mv: ModelVersion, priority: int, reason: str, force: bool) -> list[int]:
        return self.enqueue(mv, priority, reason, force)

    def find_version(self, model: str, version: str) -> ModelVersion | None:
        """A version the store knows, else one found by polling every registry now."""
        mv = self.store.get_version(model, version)
        if mv is None:
            for job in self.scheduler.jobs.values():
                job(force=True)
            mv = self.store.get_version(model, version)
        return mv

    def rerun_champions(self) -> None:
        """Cron job: re-benchmark each model's champion to catch drift from drivers, heat or hosts."""
        from benchd.service.scheduler import PRIORITY_CRON

        for name, watcher in self.watchers.items():
            for model in {v.model for v in self.store.list_versions() if v.registry == name}:
                champion = watcher.champion(model)
                mv = self.store.get_version(model, champion) if champion else None
                if mv is not None:
                    logger.info("cron: re-benchmarking champion %s/%s", model, champion)
                    self.enqueue(mv, PRIORITY_CRON, "cron re-run of the champion", True)

    # ------------------------------------------------------------------ after a run
    def after_run(self, record: Any, result: RunResult, cancel: threading.Event) -> None:
        """Called by a slot when a run ended: decide verdicts, then refresh the exported metrics."""
        try:
            self.decide_verdicts(record, result, cancel)
        except Exception:
            logger.exception("verdict for run %d failed", record.id)
        self.refresh_metrics()

    def decide_verdicts(self, record: Any, result: RunResult, cancel: threading.Event) -> None:
        """Compare the run's version with its baseline (see :mod:`benchd.service.verdicts`)."""
        self.verdicts.decide_for_run(record, result, cancel)

    def _torch_device(self, slot_name: str) -> str:
        slot = next((s for s in self.slots if s.name == slot_name), None)
        return slot.torch_device if slot is not None else slot_name

    def refresh_metrics(self) -> None:
        """Rebuild the results snapshot from the store and re-render the cached exposition."""
        # model -> the registry that reported it first (one store read, not one per model)
        registry_of: dict[str, str] = {}
        for v in self.store.list_versions():
            registry_of.setdefault(v.model, v.registry)
        for model, registry in registry_of.items():
            watcher = self.watchers.get(registry)
            if watcher is not None:
                try:
                    self.snapshots.set_champion(model, watcher.champion(model))
                except Exception as e:  # champion lookup is decoration: keep exporting
                    logger.debug("champion of %s unknown: %s", model, e)
        self.results_cache.update(self.snapshots.build())

    def is_busy(self, run_id: int) -> bool:
        """True while a slot still works on ``run_id`` (its run or the verdict after it)."""
        return any(worker.current == run_id for worker in self.workers)

    def ready(self) -> bool:
        """Ready once started and every registry was polled once."""
        return self.started.is_set() and self.scheduler.ready()

    def fail_stuck_runs(self) -> None:
        """Fail this host's runs still ``running`` far past their timeout, so they are counted."""
        host = self.store.host if self.store.shared else None
        if self.store.fail_stuck_runs(self.stuck_grace_s, host=host):
            self.refresh_metrics()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Bind HTTP, recover interrupted runs, render metrics, start sampling, slots and scheduler.

        Raises:
            StartupError: the port cannot be bound, or the runs a dead daemon left cannot be read;
                nothing was killed or changed then.
        """
        try:
            self.http.start()  # before recovery: a daemon that cannot serve must not touch runs
        except OSError as e:
            raise bind_error(self.config.http.host, self.config.http.port, e) from e
        try:
            recovered = self.store.recover_interrupted()
        except Exception as e:  # a corrupt runs table: say which store, in one sentence
            raise StartupError(
                f"cannot recover the runs a previous daemon left in the history store "
                f"{redact_url(self.store.path)}: {one_line(str(e)) or type(e).__name__}"
            ) from e
        for record in recovered:
            kill_stale_workers(self.runs_dir / str(record.id))
            logger.warning(
                "run %d (%s/%s) was interrupted by a daemon stop: %s",
                record.id,
                record.model,
                record.version,
                "re-queued" if record.state == "queued" else "marked failed",
            )
        self.refresh_metrics()
        # benchd's own threads (sampler, HTTP, slots) stay off the CPUs the workers time queries on
        pin_process(others(self.worker_cpus))
        self.sampler.start()
        for worker in self.workers:
            worker.start()
        self.scheduler.start()
        self.stuck_check.start()
        self.started.set()
        logger.info(
            "benchd %s up: %d registr%s, slots %s, store %s, HTTP on %s",
            __version__,
            len(self.watchers),
            "y" if len(self.watchers) == 1 else "ies",
            ", ".join(s.name for s in self.slots),
            redact_url(self.config.store.url),
            self.http.url,
        )

    def stop(self) -> None:
        """Stop intake, let current runs finish within the grace period, flush and close."""
        logger.info("stopping: no new runs; current runs get %.0f s to finish", self.config.shutdown_grace_s)
        self.stuck_check.stop()
        self.scheduler.stop()
        threads = [
            threading.Thread(target=w.stop, args=(self.config.shutdown_grace_s,)) for w in self.workers
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.close()
        logger.info("stopped")

    def close(self) -> None:
        """Release what :meth:`__init__` and :meth:`start` took (after a failed start, or by :meth:`stop`)."""
        self.http.stop()
        self.sampler.stop()
        self.devices.close()
        self.store.close()
        self.lock.release()

    def serve_forever(self) -> int:
        """Serve a started daemon until SIGTERM/SIGINT, then stop it; return the exit status (0)."""
        stop = threading.Event()

        def on_signal(signum: int, frame: Any) -> None:
            logger.info("received %s", signal.Signals(signum).name)
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        while not stop.wait(1.0):
            pass
        self.stop()
        return 0

    def run_forever(self) -> int:
        """Start, then serve until SIGTERM/SIGINT; return the exit status (0)."""
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self.serve_forever()
