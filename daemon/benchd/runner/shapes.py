"""Shapes ``benchd.yaml`` asks for, checked against what an exported program accepts, before any run.

An exported program records each input dimension as fixed or as a range (its ``dynamic_shapes``). A
mismatch in a fixed dimension of the spec is an error naming the input, dimension, value and constraint,
and the ``benchd.yaml`` line or export option to change. A batch size outside the program's batch range
is not an error: that batch size is skipped, with the reason, and the others still run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from benchd.errors import RunError
from benchd.runner.modelspec import InputSpec, ModelSpec
from benchd.runner.signature import CallPlan, Dim, Slot

_TIED = re.compile(r"(\w+)\.size\(\)\[(\d+)\]\s*==\s*(\w+)\.size\(\)\[(\d+)\]")
_GUARD = re.compile(r"(?:Guard failed: )?(\w+)\.size\(\)\[(\d+)\]\s*(==|<=|>=|<|>|!=)\s*(-?\d+)")


def _dynamic_hint(name: str, dim: int, label: str, low: int | None = None, high: int | None = None) -> str:
    bounds = "".join(
        f", {k}={v}"
        for k, v in (("min", low), ("max", high))
        if v is not None and not (k == "min" and v <= 1)
    )
    return f"export with dynamic_shapes={{{name!r}: {{{dim}: torch.export.Dim({label!r}{bounds})}}}}"


def _constraint(d: Dim) -> str:
    return f"a fixed {d.static}" if d.static is not None else f"only {d.text()}"


@dataclass(frozen=True)
class BatchLimits:
    """Which query sizes the program takes: ``reason(size)`` is None, or says why not and how to fix it."""

    checks: tuple[tuple[str, int, Dim], ...] = ()  # (input name, dimension, what the program accepts)
    what: str = "the model"

    def reason(self, size: int) -> str | None:
        """Why the program cannot take batches of ``size`` (with the export option to change), or None."""
        for name, dim, d in self.checks:
            if d.admits(size):
                continue
            if d.static is not None:
                said = f"was exported with a static batch of {d.static} (input {name!r} dimension {dim})"
            else:
                said = f"takes batch sizes {d.text()} only (input {name!r} dimension {dim})"
            hint = _dynamic_hint(name, dim, "batch", None, max(size, d.high or 0) if d.high else None)
            return f"batch size {size}: {self.what} {said}; {hint} to run it"
        return None


def check_shapes(plan: CallPlan, model_spec: ModelSpec, what: str) -> BatchLimits:
    """Check every declared input against the program's recorded shapes and dtypes.

    Returns the batch-size limits (checked per size by the caller).

    Raises:
        RunError: ``input_mismatch`` for a dtype, rank or fixed-dimension mismatch, or a ``dims:``
            distribution reaching outside the program's range.
    """
    specs = {i.name: i for i in model_spec.inputs}
    checks: list[tuple[str, int, Dim]] = []
    for slot, name in plan.bound:
        spec = specs[name]
        if slot.dims is None or spec.dataset:
            continue
        _check_dtype(slot, spec, model_spec, what)
        shape = spec.declared_shape()
        if len(shape) != len(slot.dims):
            raise RunError(
                f"{model_spec.spec_path}: {spec.field}.shape: input {name!r} has {len(shape)} dimensions "
                f"[{', '.join(map(str, shape))}], but {what} takes {len(slot.dims)}: "
                f"[{', '.join(d.text() for d in slot.dims)}]; correct {spec.field}.shape",
                "input_mismatch",
            )
        for dim, (want, d) in enumerate(zip(shape, slot.dims, strict=True)):
            if want == "batch":
                checks.append((name, dim, d))
            elif isinstance(want, int):
                if not d.admits(want):
                    pairs = zip(shape, slot.dims, strict=True)
                    sizes = [s if s == "batch" or x.static is None else x.static for s, x in pairs]
                    fixed = f"[{', '.join(map(str, sizes))}]"
                    fix = (
                        f"set {spec.field}.shape to {fixed}"
                        if d.static is not None
                        else f"set {spec.field}.shape[{dim}] within {d.text()}, or "
                        + _dynamic_hint(name, dim, f"d{dim}", d.low, want)
                    )
                    raise RunError(
                        f"{model_spec.spec_path}: {spec.field}.shape: input {name!r} dimension {dim} is "
                        f"{want}, but {what} takes {_constraint(d)} there; {fix}",
                        "input_mismatch",
                    )
            else:
                _check_dim(model_spec, spec, dim, str(want), d, what)
    return BatchLimits(tuple(checks), what)


def _check_dtype(slot: Slot, spec: InputSpec, model_spec: ModelSpec, what: str) -> None:
    if slot.dtype is None or slot.dtype == spec.dtype:
        return
    floats = ("float32", "float16", "bfloat16", "float64")
    if slot.dtype in floats and spec.dtype in floats:
        return  # the run's dtype setting casts floating inputs
    raise RunError(
        f"{model_spec.spec_path}: {spec.field}.dtype: input {spec.name!r} is {spec.dtype}, but {what} "
        f"takes {slot.dtype}; set {spec.field}.dtype to {slot.dtype}",
        "input_mismatch",
    )


def _check_dim(model_spec: ModelSpec, spec: InputSpec, dim: int, dim_name: str, d: Dim, what: str) -> None:
    dist = model_spec.dim(dim_name)
    low, high = dist.support()
    if d.admits(low) and d.admits(high):
        return
    raise RunError(
        f"{model_spec.spec_path}: dims.{dim_name} draws {dist.describe()}, but input {spec.name!r} "
        f"dimension {dim} of {what} takes {_constraint(d)}; narrow dims.{dim_name} to that, or "
        f"{_dynamic_hint(spec.name, dim, dim_name, low, high)}",
        "input_mismatch",
    )


def explain_guard_error(e: BaseException, model_spec: ModelSpec, what: str, size: int) -> RunError | None:
    """Rewrite torch's ``Guard failed: x.size()[0] == 1`` into a sentence naming input, value and fix."""
    tied = _TIED.search(str(e))
    if tied:
        a, da, b, db = tied.group(1), int(tied.group(2)), tied.group(3), int(tied.group(4))
        fields = {i.name: f"{i.field}.shape" for i in model_spec.inputs}
        return RunError(
            f"input {a!r} dimension {da} must equal input {b!r} dimension {db}: {what} ties them to one "
            f"size (torch: {str(e).strip().splitlines()[0]}); give both the same size or the same dims: "
            f"name in {fields.get(a, a)} and {fields.get(b, b)} of {model_spec.spec_path}",
            "input_mismatch",
        )
    m = _GUARD.search(str(e))
    if not m:
        return None
    name, dim, op, bound = m.group(1), int(m.group(2)), m.group(3), m.group(4)
    spec = next((i for i in model_spec.inputs if i.name == name), None)
    where = f"{spec.field}.shape" if spec else "inputs:"
    value = ""
    if spec is not None and spec.sample_shape:
        shape = spec.declared_shape()
        got = size if shape[dim] == "batch" else shape[dim] if dim < len(shape) else "?"
        value = f" is {got}, but"
    return RunError(
        f"input {name!r} dimension {dim}{value} {what} requires {name}.size()[{dim}] {op} {bound} "
        f"(torch: {str(e).strip().splitlines()[0]}); change {where} in {model_spec.spec_path}, or "
        f"{_dynamic_hint(name, dim, 'batch' if value and got == size else f'd{dim}')}",
        "input_mismatch",
    )
