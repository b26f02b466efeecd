"""PollJob and Scheduler, built directly: backoff, record-before-ack, overlapping polls, the champion cron."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest
from apscheduler.triggers.cron import CronTrigger

from benchd.history import SQLiteHistoryStore
from benchd.metrics.health import DaemonStats
from benchd.registry import LocalFolderWatcher
from benchd.service.app import BenchdApp
from benchd.service.scheduler import MAX_BACKOFF_S, PRIORITY_CRON, PRIORITY_POLL, PollJob, Scheduler
from tests.daemon.conftest import wait_until
from tests.service.parts import FakeClock, Registry, StoreQueue


def _polls(stats: DaemonStats, name: str) -> tuple[int, int]:
    counts = stats.polls()
    return counts.get((name, "ok"), 0), counts.get((name, "error"), 0)


def test_a_failing_registry_backs_off_exponentially_to_the_cap_then_recovers(
    tmp_path: Path, store: SQLiteHistoryStore, make_config, clock: FakeClock
) -> None:
    root = tmp_path / "registry"
    root.write_text("a file where the registry folder should be")  # every listing fails
    watcher = LocalFolderWatcher("flaky", root, cursor_store=store, settle_s=0.0)
    stats = DaemonStats()
    job = PollJob(watcher, store.record_version, StoreQueue(store, make_config()), stats, 100.0, clock=clock)
    assert not job.polled_once.is_set()

    assert job() == []
    assert _polls(stats, "flaky") == (0, 1) and job.failures == 1
    assert job.polled_once.is_set()  # a failed first poll still counts for readiness
    assert "cannot list" in (job.last_error or "")
    for failures, backoff_s in ((1, 100.0), (2, 200.0), (3, MAX_BACKOFF_S), (4, MAX_BACKOFF_S)):
        wait_s = job.not_before - clock()
        assert 0.8 * backoff_s <= wait_s <= backoff_s, (failures, wait_s)  # jitter only shortens it
        clock.advance(0.75 * backoff_s)
        assert job() == []  # still backing off: the registry is not asked
        assert _polls(stats, "flaky") == (0, failures)
        clock.advance(0.25 * backoff_s)
        job()  # due: polls and fails again
        assert _polls(stats, "flaky") == (0, failures + 1) and job.failures == failures + 1

    root.unlink()
    root.mkdir()
    Registry(root).publish("resnet", "1")
    clock.advance(MAX_BACKOFF_S)
    assert [(mv.model, mv.version) for mv in job()] == [("resnet", "1")]
    assert (job.failures, job.not_before, job.last_error) == (0, 0.0, None)
    assert _polls(stats, "flaky") == (1, 5)
    assert job() == []  # healthy again: the next poll happens at once
    assert _polls(stats, "flaky") == (2, 5)


def test_a_forced_poll_ignores_the_backoff(
    tmp_path: Path, store: SQLiteHistoryStore, make_config, clock: FakeClock
) -> None:
    root = tmp_path / "registry"
    root.write_text("not a folder")
    stats = DaemonStats()
    job = PollJob(
        LocalFolderWatcher("flaky", root, cursor_store=store),
        store.record_version,
        StoreQueue(store, make_config()),
        stats,
        60.0,
        clock=clock,
    )
    job()
    job()
    assert _polls(stats, "flaky") == (0, 1)
    job(force=True)  # a webhook or an API request for an unknown version
    assert _polls(stats, "flaky") == (0, 2) and job.failures == 2


def test_a_watcher_bug_is_counted_and_the_job_keeps_running(
    store: SQLiteHistoryStore, make_config, registry: Registry, watcher: LocalFolderWatcher, clock: FakeClock
) -> None:
    registry.publish("resnet", "1")
    stats = DaemonStats()

    def buggy_record(mv) -> None:
        raise KeyError("a bug, not a registry error")

    job = PollJob(watcher, buggy_record, StoreQueue(store, make_config()), stats, 10.0, clock=clock)
    assert job() == []
    assert job.last_error == "KeyError: 'a bug, not a registry error'"
    assert _polls(stats, "local") == (0, 1)
    job.record = store.record_version  # the bug is fixed: the version was never acknowledged
    clock.advance(10.0)
    assert [mv.version for mv in job()] == ["1"]


def test_a_crash_between_enqueue_and_ack_re_reports_the_version_and_the_store_absorbs_it(
    store: SQLiteHistoryStore, make_config, registry: Registry
) -> None:
    config = make_config()
    registry.publish("resnet", "1")
    queue = StoreQueue(store, config)
    order: list[str] = []

    class CrashingWatcher(LocalFolderWatcher):
        def ack(self, versions) -> None:
            order.append("ack")
            raise SystemExit("the daemon dies before the cursor moves")

    def record(mv) -> None:
        order.append("record")
        store.record_version(mv)

    def enqueue(*args):
        order.append("enqueue")
        return queue(*args)

    crashing = CrashingWatcher("local", registry.root, cursor_store=store, settle_s=0.0)
    job = PollJob(crashing, record, enqueue, DaemonStats(), 10.0)
    with pytest.raises(SystemExit):
        job()
    assert order == ["record", "enqueue", "ack"]  # durable first, acknowledged last
    assert store.get_version("resnet", "1") is not None
    assert [r.version for r in store.list_runs()] == ["1"]

    # the restarted daemon: a fresh watcher on the same cursor store reports the version again
    restarted = LocalFolderWatcher("local", registry.root, cursor_store=store, settle_s=0.0)
    stats = DaemonStats()
    job = PollJob(restarted, store.record_version, queue, stats, 10.0)
    assert [mv.version for mv in job()] == ["1"]
    assert queue.calls[-1][:3] == ("resnet", "1", PRIORITY_POLL)
    assert [r.version for r in store.list_runs()] == ["1"]  # deduplicated: it runs once
    assert job() == [] and _polls(stats, "local") == (2, 0)  # acknowledged this time


def test_a_failed_enqueue_leaves_the_version_unacknowledged(
    store: SQLiteHistoryStore, make_config, registry: Registry, watcher: LocalFolderWatcher
) -> None:
    registry.publish("resnet", "1")
    queue = StoreQueue(store, make_config())
    failures = iter([RuntimeError("store busy")])

    def enqueue(*args):
        for error in failures:
            raise error
        return queue(*args)

    job = PollJob(watcher, store.record_version, enqueue, DaemonStats(), 10.0)
    assert job() == [] and job.failures == 1
    assert store.list_runs() == []
    assert [mv.version for mv in job(force=True)] == ["1"]
    assert [r.version for r in store.list_runs()] == ["1"]


def test_a_poll_already_running_is_not_started_twice(
    store: SQLiteHistoryStore, make_config, registry: Registry, watcher: LocalFolderWatcher
) -> None:
    registry.publish("resnet", "1")
    inside, release = threading.Event(), threading.Event()
    calls: list[str] = []

    def slow_record(mv) -> None:
        calls.append(mv.version)
        if len(calls) == 1:  # the first poll holds on until released; an overlapping one goes through
            inside.set()
            assert release.wait(30)
        store.record_version(mv)

    job = PollJob(watcher, slow_record, StoreQueue(store, make_config()), DaemonStats(), 10.0)
    found: list[list] = []
    first = threading.Thread(target=lambda: found.append(job()))
    first.start()
    try:
        assert inside.wait(30)
        assert job(force=True) == []  # the webhook's poll while the scheduled one runs: skipped
    finally:
        release.set()
        first.join(30)
    assert [[mv.version for mv in f] for f in found] == [["1"]]
    assert calls == ["1"] and len(store.list_runs()) == 1


def test_the_scheduler_polls_every_registry_at_start_and_is_ready_after(
    tmp_path: Path, store: SQLiteHistoryStore, make_config, registry: Registry, watcher: LocalFolderWatcher
) -> None:
    registry.publish("resnet", "1")
    broken_root = tmp_path / "broken"
    broken_root.write_text("not a folder")
    stats = DaemonStats()
    queue = StoreQueue(store, make_config())
    jobs = {
        "local": PollJob(watcher, store.record_version, queue, stats, 3600.0),
        "broken": PollJob(
            LocalFolderWatcher("broken", broken_root, cursor_store=store),
            store.record_version,
            queue,
            stats,
            3600.0,
        ),
    }
    scheduler = Scheduler(jobs)
    assert not scheduler.ready()
    scheduler.start()
    try:
        wait_until(scheduler.ready, 30, "the first poll of both registries")  # not an hour later
        assert [r.version for r in store.list_runs()] == ["1"]
        assert _polls(stats, "broken") == (0, 1)  # ready even though that registry failed
        registry.publish("resnet", "2")
        scheduler.poll_now("local")
        wait_until(lambda: len(store.list_runs()) == 2, 30, "the run of the version poll_now found")
        assert _polls(stats, "broken") == (0, 1)  # poll_now polled only the registry named
    finally:
        scheduler.stop()


@pytest.fixture
def app(make_config, tmp_path: Path) -> BenchdApp:
    built = BenchdApp(make_config(champion_cron="0 3 * * *"))  # never started: no thread, no port
    yield built
    built.devices.close()
    built.store.close()


def test_the_champion_cron_is_registered_with_its_schedule(app: BenchdApp) -> None:
    job = app.scheduler._scheduler.get_job("cron:champions")
    assert job is not None and isinstance(job.trigger, CronTrigger)
    after = datetime(2030, 1, 1, 3, 0, 1, tzinfo=timezone.utc)
    assert job.trigger.get_next_fire_time(None, after) == datetime(2030, 1, 2, 3, 0, tzinfo=timezone.utc)
    assert Scheduler({})._scheduler.get_job("cron:champions") is None  # no cron configured: no job


def test_the_champion_cron_re_benchmarks_each_models_champion_once(
    app: BenchdApp, registry: Registry
) -> None:
    for model, version in (("resnet", "1"), ("resnet", "2"), ("bert", "1"), ("gpt", "1")):
        registry.publish(model, version)
    registry.set_champion("resnet", "1")
    registry.set_champion("gpt", "7")  # a champion the registry never reported: nothing to run
    app.scheduler.jobs["local"]()  # the start-up poll: every version queued once
    while (run := app.store.claim_next_run(app.slots[0].name)) is not None:
        app.store.fail_run(run.id, "internal", "ended for the test")  # finished runs, as after a day
    cron = app.scheduler._scheduler.get_job("cron:champions").func

    cron()
    queued = app.store.list_runs(state="queued")
    assert [(r.model, r.version, r.priority, r.reason) for r in queued] == [
        ("resnet", "1", PRIORITY_CRON, "cron re-run of the champion")
    ]
    cron()  # the next night, before the queued re-run ran: not queued twice
    assert len(app.store.list_runs(state="queued")) == 1


def test_a_failing_champion_cron_is_logged_and_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    def rerun() -> None:
        raise RuntimeError("registry down")

    scheduler = Scheduler({}, "*/5 * * * *", rerun)
    with caplog.at_level(logging.ERROR, logger="benchd.service.scheduler"):
        scheduler._scheduler.get_job("cron:champions").func()
    assert "champion re-run failed" in caplog.text and "registry down" in caplog.text
