"""Logging for the command line: plain lines for people, one JSON object per line for log collectors.

``setup_logging`` is called once by ``benchd.cli.main`` with the global ``--log-level`` and
``--log-format``. apscheduler's own INFO lines ("Running job ...", "Job ... executed successfully") come
twice per registry poll and say nothing benchd decided, so its loggers are held at WARNING.

A command that draws on the terminal (``benchd bench``'s progress bar) routes log records through its own
writer with :func:`route_console`, so a log line and the bar never share a line.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import sys
from collections.abc import Callable, Iterator
from typing import Any, TextIO

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Third-party loggers that speak per routine poll at INFO: held at WARNING.
QUIET_LOGGERS = ("apscheduler",)
#: Attributes every LogRecord has; anything else on a record came from ``extra=`` and is a field.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JSONFormatter(logging.Formatter):
    """One JSON object per record.

    Keys: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, then the record's structured
    fields (passed with ``extra=``), and ``exception`` when there is one.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one line of JSON."""
        doc: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_") and key not in doc:
                doc[key] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


def make_formatter(log_format: str) -> logging.Formatter:
    """The formatter for ``--log-format`` (``text`` or ``json``).

    Raises:
        ValueError: an unknown format.
    """
    if log_format == "json":
        return JSONFormatter()
    if log_format == "text":
        return logging.Formatter(TEXT_FORMAT)
    raise ValueError(f"unknown log format {log_format!r}; known: {', '.join(LOG_FORMATS)}")


class ConsoleHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record comes (so a swapped stderr is followed)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._fixed = stream
        super().__init__(stream)

    @property
    def stream(self) -> TextIO:  # noqa: D102 - StreamHandler's attribute
        return self._fixed or sys.stderr

    @stream.setter
    def stream(self, value: TextIO | None) -> None:
        self._fixed = value if value is not sys.stderr else None


def setup_logging(level: str = "INFO", log_format: str = "text", stream: TextIO | None = None) -> None:
    """Send every record at ``level`` and above to ``stream`` (default: stderr) in ``log_format``.

    Replaces the console handler an earlier call installed (a second call reconfigures instead of
    doubling lines; other handlers stay) and holds :data:`QUIET_LOGGERS` at WARNING unless ``level`` is
    DEBUG.
    """
    handler = ConsoleHandler(stream)
    handler.setFormatter(make_formatter(log_format))
    root = logging.getLogger()
    for old in _console_handlers(root):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level))
    quiet = logging.DEBUG if level == "DEBUG" else logging.WARNING
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(quiet)


def _console_handlers(root: logging.Logger) -> list[logging.Handler]:
    return [h for h in root.handlers if isinstance(h, ConsoleHandler)]


class _WriterHandler(logging.Handler):
    """Hands each formatted record to a callable (a progress bar's line writer)."""

    def __init__(self, write_line: Callable[[str], None], formatter: logging.Formatter | None) -> None:
        super().__init__()
        self._write_line = write_line
        if formatter is not None:
            self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._write_line(self.format(record))
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def route_console(
    write_line: Callable[[str], None], drop: Callable[[logging.LogRecord], bool] | None = None
) -> Iterator[None]:
    """While inside, the root logger's console handlers write through ``write_line`` instead.

    Args:
        write_line: writes one finished line (it clears and redraws whatever the command draws).
        drop: records to leave out (e.g. a failure the command itself reports), or None.
    """
    root = logging.getLogger()
    console = _console_handlers(root)
    formatter = console[0].formatter if console else logging.Formatter(TEXT_FORMAT)
    routed = _WriterHandler(write_line, formatter)
    if console:
        routed.setLevel(min(h.level for h in console))
    if drop is not None:
        routed.addFilter(lambda record: not drop(record))
    for h in console:
        root.removeHandler(h)
    root.addHandler(routed)
    try:
        yield
    finally:
        root.removeHandler(routed)
        for h in console:
            root.addHandler(h)


@contextlib.contextmanager
def log_to_file(path: Any, log_format: str = "text") -> Iterator[None]:
    """While inside, every log record goes to ``path`` instead of the console (``benchd demo``).

    Records at ERROR and above still reach the console, so a crash is never silent.
    """
    root = logging.getLogger()
    console = {h: h.level for h in _console_handlers(root)}
    file_handler = logging.FileHandler(path, encoding="utf-8")
    file_handler.setFormatter(make_formatter(log_format))
    for h in console:
        h.setLevel(max(h.level, logging.ERROR))
    root.addHandler(file_handler)
    try:
        yield
    finally:
        root.removeHandler(file_handler)
        file_handler.close()
        for h, level in console.items():
            h.setLevel(level)
