"""A hand-rolled reader of YAML mappings, kept for model specs (:mod:`benchd.runner.modelspec`).

The daemon and benchmark configs do not use it any more: they are declared once as typed models (see
:mod:`benchd.config`). Every problem is a :class:`ConfigError` naming the field path; unknown keys get a
did-you-mean.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from typing import Any

from benchd.config.units import parse_duration_s
from benchd.errors import ConfigError

__all__ = ["FieldReader", "parse_duration_s"]


class FieldReader:
    """Reads typed fields of one YAML mapping and remembers which keys were used.

    Call :meth:`finish` after reading so unknown keys (typos) are reported with a suggestion.
    """

    def __init__(self, data: Any, path: str = "", source: str | None = None) -> None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(path or "<top>", f"expected a mapping, got {type(data).__name__}", source)
        self.data = data
        self.path = path
        self.source = source
        self._used: set[str] = set()

    def child_path(self, key: str) -> str:
        """Return the dotted path of ``key`` under this mapping."""
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, problem: str) -> ConfigError:
        """Return a ConfigError for ``key`` (not raised)."""
        return ConfigError(self.child_path(key), problem, self.source)

    def has(self, key: str) -> bool:
        """True when ``key`` is present and not null."""
        return self.data.get(key) is not None

    def raw(self, key: str, default: Any = None) -> Any:
        """Return the raw value of ``key`` (marking it used)."""
        self._used.add(key)
        value = self.data.get(key)
        return default if value is None else value

    def child(self, key: str) -> FieldReader:
        """Return a reader for the nested mapping at ``key`` (empty when absent)."""
        return FieldReader(self.raw(key, {}), self.child_path(key), self.source)

    def string(self, key: str, default: str | None = None, choices: Iterable[str] | None = None) -> Any:
        """Read a string, optionally one of ``choices``."""
        value = self.raw(key, default)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, got {value!r}")
        if choices is not None:
            allowed = tuple(choices)
            if value not in allowed:
                raise self.error(key, f"must be one of {', '.join(allowed)}; got {value!r}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        """Read a boolean (true/false)."""
        value = self.raw(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {value!r}")
        return value

    def number(
        self,
        key: str,
        default: float | None,
        *,
        gt: float | None = None,
        ge: float | None = None,
        le: float | None = None,
        integer: bool = False,
    ) -> Any:
        """Read a number with optional bounds (``gt``: strictly greater, ``ge``, ``le``)."""
        value = self.raw(key, default)
        if value is None:
            return None
        kind = "an integer" if integer else "a number"
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or (integer and not isinstance(value, int))
        ):
            raise self.error(key, f"expected {kind}, got {value!r}")
        if not math.isfinite(value):
            raise self.error(key, f"must be finite, got {value!r}")
        self._check_bounds(key, value, gt, ge, le)
        return int(value) if integer else float(value)

    def duration_s(
        self, key: str, default: float | None, *, gt: float | None = None, ge: float | None = None
    ) -> Any:
        """Read a duration in seconds (``10s``, ``500ms``, ``2m`` or a plain number of seconds)."""
        value = self.raw(key, default)
        if value is None:
            return None
        seconds = parse_duration_s(value, self.child_path(key), self.source)
        self._check_bounds(key, seconds, gt, ge, None)
        return seconds

    def int_list(self, key: str, default: Iterable[int], *, ge: int = 1) -> tuple[int, ...]:
        """Read an integer or a list of integers (a comma-separated string also works)."""
        value = self.raw(key, list(default))
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, list) or not value:
            raise self.error(key, f"expected a non-empty list of integers, got {value!r}")
        out = []
        for i, item in enumerate(value):
            try:
                number = int(item) if not isinstance(item, bool) and str(item).lstrip("-").isdigit() else None
            except (TypeError, ValueError):
                number = None
            if number is None or number < ge:
                raise ConfigError(
                    f"{self.child_path(key)}[{i}]", f"expected an integer >= {ge}, got {item!r}", self.source
                )
            out.append(number)
        return tuple(out)

    def _check_bounds(
        self, key: str, value: float, gt: float | None, ge: float | None, le: float | None
    ) -> None:
        if gt is not None and not value > gt:
            raise self.error(key, f"must be > {gt:g}, got {value!r}")
        if ge is not None and not value >= ge:
            raise self.error(key, f"must be >= {ge:g}, got {value!r}")
        if le is not None and not value <= le:
            raise self.error(key, f"must be <= {le:g}, got {value!r}")

    def finish(self, extra_allowed: Iterable[str] = ()) -> None:
        """Raise a ConfigError for the first key that was never read (likely a typo)."""
        known = self._used | set(extra_allowed)
        for key in self.data:
            if key not in known:
                hint = difflib.get_close_matches(str(key), sorted(known), n=1)
                suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
                known_list = ", ".join(sorted(known))
                raise self.error(str(key), f"unknown field{suggestion}; known fields: {known_list}")
