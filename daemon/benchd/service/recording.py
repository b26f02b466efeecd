"""Recording a run's end in a store that may fail for a while (a full disk, a database restarting).

A run whose end cannot be written must never stay ``running``: nothing would count it, so no alert would
fire. :func:`record_run_end` retries the write with backoff; when the result still cannot be written it
records the run ``failed`` with the reason instead (a much smaller write, which often fits where the
result did not), and keeps trying that until the store takes it or the slot is told to give up.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from benchd.errors import StoreError
from benchd.history import HistoryStore, LeaseLostError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep retrying store writes (the config's ``store.record_retry`` and ``_max_delay``).

    Attributes:
        result_window_s: how long the result itself is retried before the run is failed instead.
        first_delay_s: the first pause; each next pause doubles, up to ``max_delay_s``.
        max_delay_s: the longest pause between two tries (recording the failure is retried forever).
    """

    result_window_s: float = 120.0
    first_delay_s: float = 0.5
    max_delay_s: float = 30.0

    def delays(self) -> Iterator[float]:
        """Pauses between tries, growing to ``max_delay_s`` and then staying there."""
        delay = min(self.first_delay_s, self.max_delay_s)
        while True:
            yield delay
            delay = min(delay * 2.0, self.max_delay_s)


def is_transient(error: BaseException) -> bool:
    """True for a store failure that may pass (the database said no), False for a refusal (run ended)."""
    if isinstance(error, LeaseLostError):
        return False
    if isinstance(error, StoreError):
        return error.__cause__ is not None  # raised from a sqlite3/psycopg error, not a state check
    return isinstance(error, OSError)


def _retry(
    write: Callable[[], None], what: str, policy: RetryPolicy, abort: threading.Event, window_s: float | None
) -> BaseException | None:
    """Call ``write`` until it works (None), or return the error once the window or ``abort`` ends it."""
    waited = 0.0
    delays = policy.delays()
    while True:
        try:
            write()
            return None
        except Exception as e:  # noqa: BLE001 - every failure is either retried or returned
            if not is_transient(e):
                return e
            delay = next(delays)
            if window_s is not None and waited + delay > window_s:
                return e
            logger.warning("%s failed (%s); retrying in %.1f s", what, e, delay)
            if abort.wait(delay):
                return e
            waited += delay


def record_run_end(
    store: HistoryStore,
    run_id: int,
    write_end: Callable[[], None],
    *,
    owner: str | None,
    abort: threading.Event,
    policy: RetryPolicy | None = None,
) -> str:
    """Write a run's end with ``write_end`` (``finish_run``/``fail_run``), surviving a failing store.

    Returns ``recorded`` (its end is stored), ``failed`` (the end could not be written: the run is
    recorded ``failed`` with the reason), ``lost`` (another host owns the run now, or it already ended)
    or ``abandoned`` (``abort`` was set while the store still failed: the run stays ``running`` and is
    recovered at the next start).
    """
    policy = policy or RetryPolicy()
    error = _retry(write_end, f"recording run {run_id}", policy, abort, policy.result_window_s)
    if error is None:
        return "recorded"
    if isinstance(error, LeaseLostError):
        logger.error("run %d: not recorded: %s", run_id, error)
        return "lost"
    reason = f"the run ended but its result could not be recorded in the history store: {error}"
    logger.error("run %d: %s; recording it as failed", run_id, reason)
    failure = _retry(
        lambda: store.fail_run(run_id, "internal", reason, owner=owner),
        f"recording run {run_id} as failed",
        policy,
        abort,
        None,
    )
    if failure is None:
        return "failed"
    if abort.is_set() and is_transient(failure):
        logger.error("run %d: left running, the store still fails (%s); see the next start", run_id, failure)
        return "abandoned"
    logger.error("run %d: cannot record it as failed either: %s", run_id, failure)
    return "lost"
