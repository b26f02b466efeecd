"""Every problem of a config at once, each with its field path, in words a user can act on.

Pydantic reports errors by location (``('registries', 0, 'mlflow', 'timeout')``); :func:`problems_from`
turns each into ``registries[0].timeout: must be <= 10m, got 1h`` by walking the declaration along the
location: union tags are dropped, bounds of durations and sizes are printed in their unit, unknown keys get
a did-you-mean from the fields of the model they were found in.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NoReturn, Union

from pydantic import BaseModel, ValidationError

from benchd.config.units import Unit, format_bytes, format_duration
from benchd.errors import ConfigError


@dataclass(frozen=True)
class Problem:
    """One invalid value: where it is (``registries[0].poll_interval``) and what is wrong with it."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class InvalidConfigError(ConfigError):
    """A config with one or more invalid fields; ``problems`` lists all of them, in document order.

    ``path`` and ``problem`` are the first one's (what a single-error caller reads); ``str()`` is one
    line per problem, each prefixed with the file.
    """

    def __init__(self, problems: Sequence[Problem], source: str | None = None) -> None:
        self.problems = list(problems)
        first = self.problems[0] if self.problems else Problem("", "invalid config")
        super().__init__(first.path, first.message, source)
        where = f"{source}: " if source else ""
        self.args = ("\n".join(f"{where}{p}" for p in self.problems),)

    def lines(self) -> list[str]:
        """One ``FILE: path: problem`` line per problem."""
        return str(self).splitlines()


class FieldProblemsError(ValueError):
    """Raised by a model's cross-field check: problems at paths relative to that model.

    Pydantic keeps the exception in the error's context, so :func:`problems_from` can place each problem
    at its own field (``max_pairs``) instead of at the model that checked it.
    """

    def __init__(self, problems: Iterable[tuple[str, str]]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{p}: {m}" for p, m in self.problems))


def problems_from(error: ValidationError, model: type[BaseModel], prefix: str = "") -> list[Problem]:
    """The problems of a pydantic ValidationError raised while validating ``model``, in document order."""
    out: list[Problem] = []
    too_short: set[str] = set()
    for err in error.errors(include_url=False):
        walk = _walk(model, err["loc"])
        ctx = err.get("ctx") or {}
        if isinstance(ctx.get("error"), FieldProblemsError):
            out.extend(Problem(_join(prefix, walk.path, sub), msg) for sub, msg in ctx["error"].problems)
            continue
        path = _join(prefix, walk.path)
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            path = _join(path, "type")
        out.append(Problem(path, _message(err, walk)))
        if err["type"] == "too_short":
            too_short.add(path)
    # pydantic counts only the valid items of a list for min_length: "empty" next to a bad item is noise
    return [p for p in out if p.path not in too_short or not any(_inside(o.path, p.path) for o in out)]


def _inside(path: str, parent: str) -> bool:
    return path != parent and path.startswith(parent) and path[len(parent)] in ".["


def raise_problems(
    error: ValidationError, model: type[BaseModel], source: str | None, prefix: str = ""
) -> NoReturn:
    """Raise :class:`InvalidConfigError` for ``error`` (never returns)."""
    raise InvalidConfigError(problems_from(error, model, prefix), source) from None


def _join(*parts: str) -> str:
    out = ""
    for part in parts:
        if not part:
            continue
        out = part if not out else (out + part if part.startswith("[") else f"{out}.{part}")
    return out


@dataclass
class _Walk:
    path: str = ""
    unit: str | None = None
    model: type[BaseModel] | None = None  # the model holding the last key
    siblings: tuple[type[BaseModel], ...] = ()  # other members of the union that model was chosen from
    tags: tuple[str, ...] = ()  # when the location is a tagged union: its tags


def _walk(root: type[BaseModel], loc: Sequence[int | str]) -> _Walk:
    """Follow ``loc`` through the declaration: the user-facing path, the unit, the model of the last key."""
    walk = _Walk()
    tp: Any = root
    for item in loc:
        tp, unit = _unwrap(tp)
        walk.unit = unit or walk.unit
        if isinstance(item, int):
            walk.path = _join(walk.path, f"[{item}]")
            tp = _item_type(tp)
        elif item == "[key]":
            tp = None
        elif (members := _union_models(tp)) and item in members:
            walk.siblings = tuple(m for tag, m in members.items() if tag != item)
            tp = members[item]
        elif isinstance(tp, type) and issubclass(tp, BaseModel):
            walk.model, walk.unit = tp, None
            name, field = _field(tp, str(item))
            walk.path = _join(walk.path, name)
            tp = field.annotation if field is not None else None
            if field is not None:
                tp = Annotated[(tp, *field.metadata)] if field.metadata else tp
        else:
            walk.path = _join(walk.path, str(item))
            tp = _value_type(tp)
    tp, unit = _unwrap(tp)
    walk.unit = unit or walk.unit
    walk.tags = tuple(_union_models(tp))
    return walk


def _unwrap(tp: Any) -> tuple[Any, str | None]:
    unit = None
    while True:
        if typing.get_origin(tp) is Annotated:
            unit = next((m.name for m in tp.__metadata__ if isinstance(m, Unit)), unit)
            tp = tp.__origin__
            continue
        if _is_union(tp):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) == 1:
                tp = args[0]
                continue
        return tp, unit


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def _union_models(tp: Any) -> dict[str, type[BaseModel]]:
    """The members of a union of models tagged by a ``type`` literal, by tag."""
    if not _is_union(tp):
        return {}
    out = {}
    for member in typing.get_args(tp):
        member, _ = _unwrap(member)
        field = getattr(member, "model_fields", {}).get("type")
        if field is not None and typing.get_origin(field.annotation) is Literal:
            out.update({tag: member for tag in typing.get_args(field.annotation)})
    return out


def _item_type(tp: Any) -> Any:
    args = typing.get_args(tp)
    return args[0] if args else None


def _value_type(tp: Any) -> Any:
    args = typing.get_args(tp)
    return args[-1] if typing.get_origin(tp) is dict and args else None


def _field(model: type[BaseModel], key: str) -> tuple[str, Any]:
    for name, field in model.model_fields.items():
        if key in (name, field.alias):
            return field.alias or name, field
    return key, None


def field_names(model: type[BaseModel]) -> list[str]:
    """The YAML names of a model's fields."""
    return [f.alias or n for n, f in model.model_fields.items()]


_BOUNDS = {
    "greater_than": (">", "gt"),
    "greater_than_equal": (">=", "ge"),
    "less_than": ("<", "lt"),
    "less_than_equal": ("<=", "le"),
}


def _message(err: Any, walk: _Walk) -> str:
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    got = f", got {_show(value, walk.unit)}"
    if kind == "extra_forbidden":
        return _unknown_field(walk)
    if kind == "missing":
        return "is required"
    if kind in _BOUNDS:
        op, key = _BOUNDS[kind]
        return f"must be {op} {_show(ctx.get(key), walk.unit)}{got}"
    if kind in ("literal_error", "enum"):
        allowed = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        if err["loc"] and err["loc"][-1] == "[key]":
            return f"unknown key; known: {allowed}"
        return f"must be one of {allowed}{got}"
    if kind == "union_tag_invalid":
        return f"must be one of {str(ctx['expected_tags']).replace(chr(39), '')}; got {ctx['tag']!r}"
    if kind == "union_tag_not_found":
        return f"is required: one of {', '.join(walk.tags)}" if walk.tags else "is required"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping, got {_type_name(value)}"
    if kind in ("tuple_type", "list_type", "iterable_type"):
        return f"expected a list, got {_type_name(value)}"
    if kind.startswith("int_"):
        return f"expected an integer{got}"
    if kind.startswith("float_"):
        return f"expected a number{got}"
    if kind.startswith("bool_"):
        return f"expected true or false{got}"
    if kind.startswith("string_type"):
        return f"expected a string{got}"
    if kind == "string_pattern_mismatch":
        return f"{_pattern_words(str(ctx.get('pattern', '')))}{got}"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind in ("too_short", "string_too_short"):
        return "must not be empty"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} entries"
    if kind == "finite_number":
        return f"must be finite{got}"
    if kind == "value_error":
        return str(ctx.get("error") or err["msg"])
    return str(err["msg"])


def _unknown_field(walk: _Walk) -> str:
    key = walk.path.rsplit(".", 1)[-1]
    known = field_names(walk.model) if walk.model is not None else []
    hint = difflib.get_close_matches(key, known, n=1)
    message = "unknown field" + (f" (did you mean {hint[0]!r}?)" if hint else "")
    other = next((m for m in walk.siblings if key in field_names(m)), None)
    if other is not None and walk.model is not None:
        mine, theirs = (typing.get_args(m.model_fields["type"].annotation)[0] for m in (walk.model, other))
        message = f"unknown field for type {mine} (it belongs to type {theirs})"
    return f"{message}; known fields: {', '.join(sorted(known))}" if known else message


def _pattern_words(pattern: str) -> str:
    if "A-Za-z_" in pattern:
        return "must be an environment variable name (letters, digits, _)"
    if "A-Za-z0-9_.-" in pattern:
        return "must be a name of letters, digits, '_', '.' and '-', starting with a letter or digit"
    return f"must match {pattern}"


def _type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _show(value: Any, unit: str | None) -> str:
    if isinstance(value, str) and unit in ("duration", "bytes"):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if unit == "duration":
            return format_duration(float(value))
        if unit == "bytes" and float(value).is_integer():
            return str(format_bytes(int(value)))
        return f"{value:g}" if isinstance(value, float) else str(value)
    return repr(value)
