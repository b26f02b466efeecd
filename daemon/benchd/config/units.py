"""The base model and value types of config fields: durations (``10s``), sizes (``2GiB``), strict scalars.

Each type parses the friendly spelling, validates as a plain number, and prints back the shortest friendly
spelling that parses to the same number exactly, so ``benchd config show`` output validates to the same
config. Parsing goes through :class:`decimal.Decimal`, so ``100us`` is exactly the float nearest 1e-4.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, Strict

_NUMBER = r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
DURATION_PATTERN = rf"^\s*{_NUMBER}\s*(ns|us|µs|ms|s|m|h)?\s*$"
BYTES_PATTERN = r"^\s*[0-9]+(?:\.[0-9]+)?\s*(B|kB|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?\s*$"
_DURATION_RE = re.compile(rf"^\s*({_NUMBER})\s*(ns|us|µs|ms|s|m|h)?\s*$")
_BYTES_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(B|kB|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?\s*$")
_SECONDS_PER = {
    "ns": Decimal("1e-9"),
    "us": Decimal("1e-6"),
    "µs": Decimal("1e-6"),
    "ms": Decimal("1e-3"),
    "s": Decimal(1),
    "m": Decimal(60),
    "h": Decimal(3600),
    None: Decimal(1),
}
_BYTES_PER = {
    None: 1,
    "B": 1,
    "kB": 1000,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
    "KiB": 1 << 10,
    "MiB": 1 << 20,
    "GiB": 1 << 30,
    "TiB": 1 << 40,
}

#: Common bounds, in seconds.
MINUTE_S = 60.0
HOUR_S = 3600.0
DAY_S = 86400.0


@dataclass(frozen=True)
class Unit:
    """Marks a field's unit in its type (read by the error messages and the README table)."""

    name: str


def parse_duration_s(value: Any, path: str = "", source: str | None = None) -> float:
    """Parse a duration: a number of seconds, or a string such as ``"10s"``, ``"500ms"``, ``"2m"``, ``"1h"``.

    Raises:
        ConfigError: the value is not a finite duration (naming ``path`` and ``source``).
    """
    try:
        return _duration_s(value)
    except ValueError as e:
        from benchd.errors import ConfigError

        raise ConfigError(path, str(e), source) from None


def _duration_s(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 10s or 500ms, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION_RE.match(value)):
        seconds = float(Decimal(m.group(1)) * _SECONDS_PER[m.group(2)])
    else:
        raise ValueError(f"expected a duration such as 10s or 500ms, got {value!r}")
    if not math.isfinite(seconds):
        raise ValueError(f"must be finite, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest friendly spelling of ``seconds`` that parses back to exactly the same float."""
    if seconds < 0:
        return "-" + format_duration(-seconds)
    exact = Decimal(repr(float(seconds)))
    if exact == 0:
        return "0s"
    for unit in ("h", "m"):
        count = exact / _SECONDS_PER[unit]
        if count >= 1 and count == count.to_integral_value():
            return f"{_plain(count)}{unit}"
    for unit in ("s", "ms", "us"):
        if exact >= _SECONDS_PER[unit]:
            return f"{_plain(exact / _SECONDS_PER[unit])}{unit}"
    return f"{_plain(exact / _SECONDS_PER['ns'])}ns"


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def parse_bytes(value: Any) -> int:
    """Parse a byte size: an integer, or a string such as ``"512MiB"``, ``"2GiB"``, ``"10MB"``.

    Raises:
        ValueError: not a whole number of bytes.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as 512MiB or 2GiB, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and (m := _BYTES_RE.match(value)):
        try:
            exact = Decimal(m.group(1)) * _BYTES_PER[m.group(2)]
        except InvalidOperation:
            exact = Decimal("NaN")
        if exact == exact.to_integral_value():
            return int(exact)
        raise ValueError(f"must be a whole number of bytes, got {value!r}")
    raise ValueError(f"expected a size such as 512MiB or 2GiB, got {value!r}")


def format_bytes(size: int) -> str | int:
    """``size`` in the largest binary unit that divides it exactly (``2GiB``), else the plain integer."""
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        per = _BYTES_PER[unit]
        if size and size % per == 0:
            return f"{size // per}{unit}"
    return size


def _check_duration(value: Any) -> Any:
    return value if value is None else _duration_s(value)


def _check_bytes(value: Any) -> Any:
    return value if value is None else parse_bytes(value)


def _show_bytes(size: int) -> str | int:
    return format_bytes(size)


#: A duration in seconds; YAML takes ``500ms``, ``10s``, ``2m``, ``1h`` or plain seconds.
Duration = Annotated[
    float,
    Unit("duration"),
    BeforeValidator(
        _check_duration,
        json_schema_input_type=Union[float, Annotated[str, Field(pattern=DURATION_PATTERN)]],
    ),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
#: A size in bytes; YAML takes an integer or ``512MiB``, ``2GiB``, ``10MB``.
ByteSize = Annotated[
    int,
    Unit("bytes"),
    BeforeValidator(
        _check_bytes, json_schema_input_type=Union[int, Annotated[str, Field(pattern=BYTES_PATTERN)]]
    ),
    PlainSerializer(_show_bytes, return_type=Union[str, int], when_used="json"),
]
#: Scalars that refuse YAML's near misses (``"yes"`` for a bool, ``"8"`` or ``true`` for an integer).
Bool = Annotated[bool, Strict()]
Int = Annotated[int, Strict()]
Str = Annotated[str, Strict()]
Number = Annotated[float, Strict(), Field(allow_inf_nan=False)]
#: The name of an environment variable (the config names variables, never holds secrets).
EnvName = Annotated[str, Strict(), Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128)]
#: A name that becomes a folder, a metric label and a URL parameter: no separators, no dot-dot.
SafeName = Annotated[str, Strict(), Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)]


class ConfigModel(BaseModel):
    """Base of every config section: frozen, unknown keys refused, YAML names as aliases of the attributes.

    Attributes carry their unit (``poll_interval_s``); the YAML name is the alias (``poll_interval``).
    Both are accepted when validating, so code builds configs with attribute names
    (``VerdictConfig(trial_s=0.5)``) and files use the documented names.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        protected_namespaces=(),
    )
