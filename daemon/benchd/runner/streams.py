"""Reading what a worker writes, in bounded memory: its progress events (stdout) and its log's tail.

A worker is model code: it may write a gigabyte without a newline, or flood stderr. The daemon reads
stdout one line of at most ``max_line_bytes`` at a time (a longer line is skipped in pieces and logged,
never held whole), and reads only the last few kB of ``worker.log`` (the supervisor caps the file itself).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

logger = logging.getLogger(__name__)

EventHandler = Callable[[dict[str, Any]], None]
DEFAULT_MAX_EVENT_BYTES = 1 << 20
STDERR_TAIL_BYTES = 4000


def read_events(
    stream: IO[bytes], on_event: EventHandler | None, max_line_bytes: int = DEFAULT_MAX_EVENT_BYTES
) -> int:
    """Hand each JSON line the worker writes to ``on_event`` until it closes stdout.

    Lines longer than ``max_line_bytes`` are dropped (read and discarded in pieces of that size), and so
    are lines that are not a JSON object. Returns the number of bytes dropped.
    """
    dropped_total = 0
    while True:
        line = stream.readline(max_line_bytes + 1)
        if not line:
            return dropped_total
        if len(line) > max_line_bytes and not line.endswith(b"\n"):
            dropped = len(line) + _skip_rest_of_line(stream, max_line_bytes)
            dropped_total += dropped
            logger.warning(
                "dropped a %d-byte line from the worker's stdout (events are at most %d bytes)",
                dropped,
                max_line_bytes,
            )
            continue
        try:
            event = json.loads(line)
        except ValueError:
            dropped_total += len(line)
            continue
        if on_event is not None and isinstance(event, dict):
            try:
                on_event(event)
            except Exception:  # a broken progress display must not break the run
                logger.exception("progress handler failed")


def _skip_rest_of_line(stream: IO[bytes], chunk_bytes: int) -> int:
    skipped = 0
    while True:
        piece = stream.readline(chunk_bytes)
        skipped += len(piece)
        if not piece or piece.endswith(b"\n"):
            return skipped


def _tail_of(path: Path, n_bytes: int) -> bytes:
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - n_bytes))
            return f.read(n_bytes)
    except OSError:
        return b""


def stderr_tail(path: Path, n_bytes: int = STDERR_TAIL_BYTES) -> str:
    """The last ``n_bytes`` a worker wrote to its log (``path``, then ``path.1`` when it rotated).

    Reads only those bytes, however large the file; shown when a worker died without a result.
    """
    data = _tail_of(path, n_bytes)
    if len(data) < n_bytes:
        data = _tail_of(path.with_name(path.name + ".1"), n_bytes - len(data)) + data
    return data.decode("utf-8", "replace").strip()
