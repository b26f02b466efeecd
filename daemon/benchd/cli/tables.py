"""Plain-text tables and value formats shared by the commands that print them."""

from __future__ import annotations

from collections.abc import Sequence


def format_seconds(seconds: float | None) -> str:
    """A duration for a table: ``-`` for None, microseconds below 1 ms, else milliseconds."""
    if seconds is None:
        return "-"
    if abs(seconds) < 1e-3:
        return f"{seconds * 1e6:.1f}us"
    return f"{seconds * 1e3:.3f}ms"


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, rule: bool = True) -> str:
    """Left-aligned columns two spaces apart, with a dashed rule under the header."""
    table = [tuple(header), *(tuple(r) for r in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table]
    if rule:
        lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
