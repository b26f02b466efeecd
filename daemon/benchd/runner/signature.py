"""What inputs an artifact takes, read from the artifact itself, and how ``benchd.yaml``'s inputs map to it.

Sources: a ``torch.export`` program's call spec, ``forward`` argument names and placeholder shapes with
their range constraints; an AOTInductor package's call spec; a TorchScript ``forward`` schema; a Python
``forward`` signature (Hugging Face, pickles). The result is a :class:`CallPlan` that turns one prepared
batch (input name -> tensor) into ``(args, kwargs)`` once, before timing.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from benchd.errors import RunError
from benchd.runner.modelspec import InputSpec, ModelSpec


@dataclass(frozen=True)
class Dim:
    """One dimension the program accepts: a fixed size, or a range (``high`` None: unbounded)."""

    static: int | None = None
    low: int | None = None
    high: int | None = None

    def text(self) -> str:
        """``64``, ``1..4096``, ``2..`` or ``?``."""
        if self.static is not None:
            return str(self.static)
        if self.low is None:
            return "?"
        return f"{self.low}..{'' if self.high is None else self.high}"

    def admits(self, value: int) -> bool:
        """True when ``value`` is a size this dimension takes (unknown constraints admit anything)."""
        if self.static is not None:
            return value == self.static
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)


@dataclass(frozen=True)
class Slot:
    """One input the artifact takes: its name, how it is passed, and what it must look like when known."""

    name: str | None
    how: str  # positional, keyword, or dict (a key of a dict argument at ``position``)
    position: int | None = None
    dtype: str | None = None
    dims: tuple[Dim, ...] | None = None
    required: bool = True

    def describe(self) -> str:
        """``x: float32[1..4096, 64] (positional 0)``."""
        shape = f"[{', '.join(d.text() for d in self.dims)}]" if self.dims is not None else ""
        where = {"positional": f"positional {self.position}", "keyword": "keyword"}.get(
            self.how, f"key of dict argument {self.position}"
        )
        optional = ", optional" if not self.required else ""
        return f"{self.name or f'arg{self.position}'}: {self.dtype or ''}{shape} ({where}{optional})"


@dataclass(frozen=True)
class Signature:
    """The inputs an artifact takes; ``strict`` when the call must match exactly (export, AOTInductor)."""

    source: str
    slots: tuple[Slot, ...]
    strict: bool = False
    open_keywords: bool = False
    dict_arg: int | None = None  # position of a single dict argument whose keys are free


@dataclass(frozen=True)
class CallPlan:
    """How one batch becomes a call: ``args`` items are input names or ``("dict", ((key, name), ...))``."""

    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, str], ...] = ()
    style: str = "positional"
    bound: tuple[tuple[Slot, str], ...] = ()  # which declared input feeds which slot

    def build(self, named: Mapping[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """``(args, kwargs)`` for one batch of tensors keyed by input name."""
        args = tuple(
            {key: named[name] for key, name in a[1]} if isinstance(a, tuple) else named[a] for a in self.args
        )
        return args, {kw: named[name] for kw, name in self.kwargs}


def _dtype_name(dtype: Any) -> str | None:
    return str(dtype).removeprefix("torch.") if dtype is not None else None


def _dims(val: Any, ranges: Mapping[Any, Any]) -> tuple[Dim, ...] | None:
    shape = getattr(val, "shape", None)
    if shape is None:
        return None
    out = []
    for size in shape:
        if isinstance(size, int):
            out.append(Dim(static=size))
            continue
        vr = ranges.get(getattr(getattr(size, "node", None), "expr", None))
        if vr is None:
            out.append(Dim())
            continue
        low, high = vr.lower, vr.upper
        out.append(Dim(low=int(low) if low.is_finite else None, high=int(high) if high.is_finite else None))
    return tuple(out)


def _children(spec: Any) -> list[Any]:
    children = getattr(spec, "children", None)
    return list(children()) if callable(children) else list(spec.children_specs)


def _spec_slots(in_spec: Any, names: list[str] | None, metas: list[Any] | None, ranges: Any) -> list[Slot]:
    """Slots from a ``((args...), {kwargs})`` tree spec; ``metas`` are the flat inputs' example values."""
    args_spec, kwargs_spec = _children(in_spec)
    flat = iter(metas or [])
    slots: list[Slot] = []

    def leaf(name: str | None, how: str, pos: int | None) -> Slot:
        val = next(flat, None)
        return Slot(name, how, pos, _dtype_name(getattr(val, "dtype", None)), _dims(val, ranges))

    for i, child in enumerate(_children(args_spec)):
        if child.is_leaf():
            slots.append(leaf(names[i] if names and i < len(names) else None, "positional", i))
        elif child.type is dict and all(c.is_leaf() for c in _children(child)):
            slots.extend(leaf(str(key), "dict", i) for key in child.context)
        elif child.num_leaves == 0:
            continue  # None or an empty container: nothing to feed
        else:
            raise RunError(
                f"argument {i} of the program is a nested {child.type.__name__}; benchd feeds tensors, "
                "one dict of tensors, or keyword tensors",
                "input_mismatch",
            )
    for key, child in zip(kwargs_spec.context or [], _children(kwargs_spec), strict=False):
        if child.is_leaf():
            slots.append(leaf(str(key), "keyword", None))
    return slots


def read_signature(artifact: Any) -> Signature | None:
    """The inputs ``artifact`` (a :class:`~benchd.runner.artifacts.LoadedArtifact`) takes, or None."""
    if artifact.fmt == "export":
        program = artifact.program
        call_sig = program.module_call_graph[0].signature
        names = list(getattr(call_sig, "forward_arg_names", None) or [])
        values = {n.name: n.meta.get("val") for n in program.graph.nodes if n.op == "placeholder"}
        metas = [values.get(u) for u in program.graph_signature.user_inputs]
        exported = tuple(_spec_slots(artifact.in_spec, names, metas, program.range_constraints))
        return Signature("its exported call spec", exported, strict=True)
    if artifact.fmt == "aoti":
        packaged = tuple(_spec_slots(artifact.in_spec, None, None, {}))
        return Signature("its AOTInductor call spec", packaged, strict=True)
    forward = getattr(artifact.model, "forward", None)
    if artifact.fmt == "torchscript":
        schema = getattr(forward, "schema", None)
        if schema is None:
            return None
        args = list(schema.arguments)[1:]
        slots = tuple(
            Slot(a.name, "keyword", i, required=not a.has_default_value()) for i, a in enumerate(args)
        )
        dicts = [i for i, a in enumerate(args) if str(a.type).startswith("Dict(")]
        return Signature("its TorchScript forward schema", slots, dict_arg=_only(dicts, slots))
    try:
        params = list(inspect.signature(forward).parameters.values()) if forward else []
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    named = [p for p in params if p.kind in kinds or p.kind == inspect.Parameter.POSITIONAL_ONLY]
    slots = tuple(
        Slot(p.name, "keyword", i, required=p.default is inspect.Parameter.empty) for i, p in enumerate(named)
    )
    dicts = [i for i, p in enumerate(named) if "dict" in str(p.annotation).lower()]
    return Signature(
        "forward()'s signature",
        slots,
        # transformers' **kwargs carry attention options, not tensors: inputs must be named parameters
        open_keywords=artifact.fmt != "hf" and any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params),
        dict_arg=_only(dicts, slots),
    )


def _only(dicts: list[int], slots: tuple[Slot, ...]) -> int | None:
    """The dict argument's position when it is the only required input."""
    required = [i for i, s in enumerate(slots) if s.required]
    return dicts[0] if len(dicts) == 1 and required == dicts else None


def _declared(spec: InputSpec) -> str:
    shape = f"[{', '.join(str(d) for d in spec.declared_shape())}]" if spec.sample_shape else "(dataset)"
    return f"{spec.name}: {spec.dtype}{shape}"


def mismatch_error(
    sig: Signature, model_spec: ModelSpec, what: str, missing: list[str], extra: list[str]
) -> RunError:
    """The one-sentence error naming expected and declared inputs, with shapes and dtypes."""
    expected = "; ".join(s.describe() for s in sig.slots) or "no tensor inputs"
    declared = "; ".join(_declared(i) for i in model_spec.inputs)
    parts = [f"{what} expects {expected} (from {sig.source}), but {model_spec.spec_path} declares {declared}"]
    if missing:
        parts.append(f"missing: {', '.join(missing)} (add them under inputs:)")
    if extra:
        parts.append(f"not taken by the model: {', '.join(extra)} (rename or remove them)")
    return RunError("; ".join(parts), "input_mismatch")


def _plan_from_slots(slots: list[tuple[Slot, str]], style_hint: str) -> CallPlan:
    args: list[Any] = []
    dicts: dict[int, list[tuple[str, str]]] = {}
    kwargs: list[tuple[str, str]] = []
    for slot, name in slots:
        if slot.how == "positional" or (style_hint == "positional" and slot.how == "keyword"):
            args.append(name)
        elif slot.how == "dict":
            if slot.position not in dicts:
                dicts[slot.position or 0] = []
                args.append(("dict", slot.position))
            dicts[slot.position or 0].append((str(slot.name), name))
        else:
            kwargs.append((str(slot.name), name))
    args = [("dict", tuple(dicts[a[1]])) if isinstance(a, tuple) else a for a in args]
    style = "dict" if dicts else ("keyword" if kwargs and not args else "positional")
    return CallPlan(tuple(args), tuple(kwargs), style, tuple(slots))


def plan_call(sig: Signature | None, model_spec: ModelSpec, what: str) -> CallPlan:
    """Map ``benchd.yaml``'s inputs onto the artifact's signature (``what`` names the artifact).

    Raises:
        RunError: ``input_mismatch`` naming the expected and the declared inputs.
    """
    declared = [i.name for i in model_spec.inputs]
    mode = model_spec.pass_inputs
    if sig is not None and sig.strict:
        plan = _strict_plan(sig, model_spec, what)
        if mode not in ("auto", plan.style):
            raise RunError(
                f"{model_spec.spec_path}: pass_inputs: {mode}, but {what} takes {plan.style} inputs "
                f"({', '.join(s.describe() for s in sig.slots)}, from {sig.source}); remove pass_inputs: "
                f"or set it to {plan.style}",
                "input_mismatch",
            )
        return plan
    if mode == "positional" or (mode == "auto" and sig is None):
        return CallPlan(tuple(declared), style="positional")
    if mode == "dict" or (mode == "auto" and sig is not None and sig.dict_arg is not None):
        return CallPlan((("dict", tuple((n, n) for n in declared)),), style="dict")
    known = {s.name for s in sig.slots} if sig else set()
    extra = [n for n in declared if n not in known]
    if mode == "keyword" or (sig and not extra) or (sig and sig.open_keywords):
        missing = [str(s.name) for s in sig.slots if s.required and s.name not in declared] if sig else []
        if sig and ((extra and not sig.open_keywords) or missing):
            raise mismatch_error(sig, model_spec, what, missing, [] if sig.open_keywords else extra)
        ordered = [s.name for s in sig.slots[: len(declared)]] if sig else []
        if mode == "auto" and ordered == declared and model_spec.artifact_format != "hf":
            return CallPlan(tuple(declared), style="positional")
        return CallPlan(kwargs=tuple((n, n) for n in declared), style="keyword")
    assert sig is not None  # without a signature every mode returned above
    required = [s for s in sig.slots if s.required]
    by_order = model_spec.artifact_format != "hf"  # a Hugging Face forward is called by name only
    if by_order and len(required) <= len(declared) <= len(sig.slots):  # names differ: in declared order
        return CallPlan(tuple(declared), style="positional")
    missing = [str(s.name) for s in required if s.name not in declared]
    raise mismatch_error(sig, model_spec, what, missing, extra)


def _strict_plan(sig: Signature, model_spec: ModelSpec, what: str) -> CallPlan:
    declared = [i.name for i in model_spec.inputs]
    names = [s.name for s in sig.slots]
    if set(declared) == set(names) and len(declared) == len(names):
        return _plan_from_slots([(s, str(s.name)) for s in sig.slots], "exact")
    positional = all(s.how == "positional" for s in sig.slots)
    if positional and len(declared) == len(sig.slots) and not set(declared) & {n for n in names if n}:
        # The names say nothing (an AOTInductor package has none; older specs used input0...): by order.
        return _plan_from_slots(list(zip(sig.slots, declared, strict=True)), "exact")
    missing = [s.describe() for s in sig.slots if s.name not in declared]
    extra = [n for n in declared if n not in names]
    raise mismatch_error(sig, model_spec, what, missing, extra)
