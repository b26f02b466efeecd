"""Run test worker threads so that an exception in any of them fails the test.

pytest only *warns* about an exception raised in a thread (``PytestUnhandledThreadExceptionWarning``), so a
concurrency test whose worker dies of the very race it exists to catch would still pass. :func:`run_threads`
collects every worker's exception and fails the test with all of them, and fails when a worker is still
running at the deadline (a deadlock is a failure, not a pass).
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import pytest


def run_threads(calls: list[Callable[[], Any]], timeout_s: float) -> None:
    """Run each of ``calls`` in its own thread, all at once; fail the test if any raised or still runs.

    Args:
        calls: the workers (``functools.partial(worker, k)`` for arguments).
        timeout_s: how long all threads together may take before the test fails as hung.
    """
    errors: list[str] = []
    lock = threading.Lock()

    def guarded(k: int, call: Callable[[], Any]) -> None:
        try:
            call()
        except BaseException:  # noqa: BLE001 - every failure, assertion errors included
            with lock:
                errors.append(f"thread {k} ({call!r}) raised:\n{traceback.format_exc()}")

    threads = [
        threading.Thread(target=guarded, args=(k, call), name=f"test-worker-{k}", daemon=True)
        for k, call in enumerate(calls)
    ]
    for t in threads:
        t.start()
    deadline_s = time.monotonic() + timeout_s
    for t in threads:
        t.join(timeout=max(0.0, deadline_s - time.monotonic()))
    hung = [t.name for t in threads if t.is_alive()]
    if errors or hung:
        report = "\n".join(errors)
        if hung:
            report += f"\nstill running after {timeout_s:.0f} s: {', '.join(hung)}"
        pytest.fail(f"{len(errors)} of {len(threads)} worker threads failed:\n{report}", pytrace=False)
