"""Record (de)serialisation and config loading speed: pydantic (now) beside the hand-written code it replaced.

Prints microseconds per call, side by side with the reference: ``from_dict`` against main's hand-written
type walk (``_coerce``, copied below verbatim as the reference) and ``to_dict`` against
``dataclasses.asdict`` (what main used); plus loading ``configs/example.yaml`` and the CPU time of
importing ``benchd.config`` in a fresh interpreter (main's plain-YAML config module: about 64 ms on
the shared 2-core host where pydantic's own import took 90 ms). main's history store memoised
``from_dict`` with an ``lru_cache`` because the walk took about 2 ms per RunResult on a busy host.

    python bench/records_bench.py            # about 20 s
    python bench/records_bench.py --quick    # about 5 s
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import statistics
import subprocess
import sys
import time
import types
import typing
from pathlib import Path
from typing import Any

from benchd.records import RunResult, RunSpec, Verdict, from_dict, to_dict

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "config" / "fixtures" / "records_4a4dd9e.json"


def old_from_dict(cls: Any, data: dict[str, Any]) -> Any:
    """main's ``records.from_dict`` (4a4dd9e), its type-hint cache included: the reference."""
    hints = _old_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _old_coerce(hints[f.name], data[f.name])
    return cls(**kwargs)


@functools.cache
def _old_type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _old_coerce(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _old_coerce(inner[0], value) if len(inner) == 1 else value
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return old_from_dict(hint, value)
    if origin is tuple:
        item = args[0] if args else Any
        return tuple(_old_coerce(item, v) for v in value)
    return value


def per_call_us(fn: Any, repeats: int, rounds: int = 5) -> float:
    """Median over ``rounds`` of the mean time per call, in microseconds."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        times.append((time.perf_counter() - start) / repeats * 1e6)
    return statistics.median(times)


def import_ms(module: str) -> float:
    """CPU time of ``import module`` in a fresh interpreter (median of 5), ms (steadier than wall time)."""
    code = f"import time; t = time.process_time(); import {module}; print((time.process_time() - t) * 1e3)"
    runs = [float(subprocess.check_output([sys.executable, "-c", code], text=True)) for _ in range(5)]
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    repeats = 200 if args.quick else 1000
    docs = json.loads(FIXTURE.read_text())
    rows = []
    for name, cls in (("RunResult", RunResult), ("RunSpec", RunSpec), ("Verdict", Verdict)):
        doc = docs[name][0]
        assert from_dict(cls, doc) == old_from_dict(cls, doc)
        record = from_dict(cls, doc)
        rows.append(
            (
                f"from_dict({name})",
                per_call_us(lambda c=cls, d=doc: from_dict(c, d), repeats),
                per_call_us(lambda c=cls, d=doc: old_from_dict(c, d), repeats),
                "main's _coerce walk",
            )
        )
        rows.append(
            (
                f"to_dict({name})",
                per_call_us(lambda r=record: to_dict(r), repeats),
                per_call_us(lambda r=record: dataclasses.asdict(r), repeats),
                "dataclasses.asdict",
            )
        )
    from benchd.config import load_daemon_config

    example = REPO / "configs" / "example.yaml"
    rows.append(("load configs/example.yaml", per_call_us(lambda: load_daemon_config(example), 20), None, ""))
    print(f"{'operation':28} {'now (us)':>10} {'reference (us)':>15}  reference")
    for label, now, ref, what in rows:
        ref_text = f"{ref:15.1f}" if ref is not None else f"{'-':>15}"
        print(f"{label:28} {now:10.1f} {ref_text}  {what}")
    print(
        f"\nimport CPU time in a fresh interpreter: benchd.records {import_ms('benchd.records'):.0f} ms, "
        f"benchd.config {import_ms('benchd.config'):.0f} ms, pydantic {import_ms('pydantic.main'):.0f} ms"
    )


if __name__ == "__main__":
    main()
