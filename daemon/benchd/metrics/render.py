"""Render metric families to the Prometheus text format (0.0.4) and OpenMetrics 1.0.

Byte-for-byte the output of ``prometheus_client``'s ``generate_latest`` (both formats) for the families
benchd builds: gauges, counters, histograms and info metrics without exemplars or ``_created`` samples.
Two differences make it usable for the cached results part of /metrics: it takes any iterable of
families (not a registry), and :func:`render_openmetrics` can leave out the final ``# EOF`` so a live
part can follow. The tests compare it with ``generate_latest`` and parse it with ``prometheus_client``'s
parsers, and ``promtool check metrics`` lints a real exposition.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as _OPENMETRICS_CONTENT_TYPE
from prometheus_client.utils import floatToGoString

TEXT_CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""Content-Type of the Prometheus text format 0.0.4."""
OPENMETRICS_CONTENT_TYPE = _OPENMETRICS_CONTENT_TYPE
"""Content-Type of OpenMetrics 1.0.0."""
OPENMETRICS_EOF = b"# EOF\n"

_TEXT_TYPES = {"info": "gauge", "stateset": "gauge", "gaugehistogram": "histogram", "unknown": "untyped"}
_TEXT_SUFFIX = {"counter": "_total", "info": "_info"}
_NEEDS_ESCAPE = re.compile(r'[\\\n"]')
_LEGACY_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


class RenderError(ValueError):
    """A family cannot be rendered by this renderer (exemplars, native histograms, non-legacy names)."""


def _escape_value(value: str) -> str:
    if _NEEDS_ESCAPE.search(value) is None:
        return value
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _check(metric: Metric) -> None:
    if not _LEGACY_NAME.match(metric.name):
        raise RenderError(f"metric name {metric.name!r} needs UTF-8 escaping")
    suffixes = (metric.name + "_created", metric.name + "_gsum", metric.name + "_gcount")
    for s in metric.samples:
        if s.exemplar is not None or s.native_histogram is not None:
            raise RenderError(f"{metric.name}: exemplars and native histograms are not supported")
        if s.name in suffixes:
            raise RenderError(f"{metric.name}: {s.name} samples are not supported")


class _SampleLines:
    """Formats sample lines, memoising label orders, escaped values and numbers (they repeat a lot)."""

    def __init__(self) -> None:
        self._orders: dict[tuple[str, ...], list[str]] = {}
        self._escaped: dict[str, str] = {}
        self._numbers: dict[float, str] = {}

    def lines(self, metric: Metric, openmetrics: bool) -> str:
        out: list[str] = []
        orders, escaped, numbers = self._orders, self._escaped, self._numbers
        for s in metric.samples:
            labels = s.labels
            if labels:
                keys = tuple(labels)
                order = orders.get(keys)
                if order is None:
                    order = orders[keys] = sorted(keys)
                parts = []
                for k in order:
                    v = labels[k]
                    e = escaped.get(v)
                    if e is None:
                        e = escaped[v] = _escape_value(v)
                    parts.append(f'{k}="{e}"')
                block = "{" + ",".join(parts) + "}"
            else:
                block = ""
            value = s.value
            number = numbers.get(value)
            if number is None:
                number = floatToGoString(value)
                if value == value:  # NaN never equals itself: not memoised
                    numbers[value] = number
            if s.timestamp is None:
                out.append(f"{s.name}{block} {number}\n")
            elif openmetrics:
                out.append(f"{s.name}{block} {number} {s.timestamp}\n")
            else:
                out.append(f"{s.name}{block} {number} {int(float(s.timestamp) * 1000):d}\n")
        return "".join(out)


def _text_header(metric: Metric) -> str:
    name = metric.name + _TEXT_SUFFIX.get(metric.type, "")
    kind = _TEXT_TYPES.get(metric.type, metric.type)
    doc = metric.documentation.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {name} {doc}\n# TYPE {name} {kind}\n"


def _openmetrics_header(metric: Metric) -> str:
    name = metric.name
    header = f"# HELP {name} {_escape_value(metric.documentation)}\n# TYPE {name} {metric.type}\n"
    if metric.unit:
        header += f"# UNIT {name} {metric.unit}\n"
    return header


def render_text(families: Iterable[Metric]) -> bytes:
    """Render families in the Prometheus text format 0.0.4 (UTF-8 bytes).

    Raises:
        RenderError: a family carries something this renderer does not write (exemplars, ``_created``).
    """
    lines = _SampleLines()
    out: list[str] = []
    for metric in families:
        _check(metric)
        out.append(_text_header(metric))
        out.append(lines.lines(metric, openmetrics=False))
    return "".join(out).encode("utf-8")


def render_openmetrics(families: Iterable[Metric], *, eof: bool = True) -> bytes:
    """Render families in OpenMetrics 1.0.0 (UTF-8 bytes).

    Args:
        families: the metric families.
        eof: end with ``# EOF``; pass False for a part that others follow (``# EOF`` must come exactly
            once, at the very end of an exposition).

    Raises:
        RenderError: a family carries something this renderer does not write (exemplars, ``_created``).
    """
    lines = _SampleLines()
    out: list[str] = []
    for metric in families:
        _check(metric)
        out.append(_openmetrics_header(metric))
        out.append(lines.lines(metric, openmetrics=True))
    if eof:
        out.append("# EOF\n")
    return "".join(out).encode("utf-8")


def render_both(families: Iterable[Metric]) -> tuple[bytes, bytes]:
    """Render families once into the text format and OpenMetrics without ``# EOF``.

    Sample lines without timestamps are the same in both formats, so they are formatted once.

    Returns:
        (text format 0.0.4, OpenMetrics 1.0.0 without the final ``# EOF``).
    """
    lines = _SampleLines()
    text: list[str] = []
    om: list[str] = []
    for metric in families:
        _check(metric)
        if any(s.timestamp is not None for s in metric.samples):
            body_text, body_om = lines.lines(metric, False), lines.lines(metric, True)
        else:
            body_text = body_om = lines.lines(metric, True)
        text += (_text_header(metric), body_text)
        om += (_openmetrics_header(metric), body_om)
    return "".join(text).encode("utf-8"), "".join(om).encode("utf-8")


def is_openmetrics_accepted(accept_header: str) -> bool:
    """Whether an HTTP ``Accept`` header asks for OpenMetrics (any version, with q > 0).

    Prometheus sends ``application/openmetrics-text;version=1.0.0,...,text/plain;version=0.0.4;q=0.5``;
    benchd answers OpenMetrics 1.0.0 to any OpenMetrics request, the text format otherwise.
    """
    for media_range in (accept_header or "").split(","):
        parts = [p.strip() for p in media_range.split(";")]
        if parts[0].lower() != "application/openmetrics-text":
            continue
        q = 1.0
        for param in parts[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > 0:
            return True
    return False
