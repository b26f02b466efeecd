"""Documents generated from the declaration: the JSON Schema for editors and the README's field table.

``benchd config schema`` prints :func:`json_schema_text` (committed as ``configs/benchd.schema.json``);
``benchd config reference`` prints :func:`markdown_table` (the README's "Configuration reference").
Tests regenerate both and fail when the committed copies differ.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Union

import yaml
from pydantic import BaseModel

from benchd.config.daemon import DaemonConfig
from benchd.config.units import Unit

SCHEMA_ID = "benchd.schema.json"
_SUFFIX_UNITS = {"_s": "s", "_w": "W", "_c": "°C", "_hz": "Hz", "_ratio": "0-1", "_qps": "queries/s"}
_UNIT_WORDS = {"duration": "duration", "bytes": "bytes"}


@dataclass(frozen=True)
class FieldDoc:
    """One row of the reference: YAML path, default, unit and meaning."""

    path: str
    default: str
    unit: str
    doc: str


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the daemon config file (draft 2020-12), with YAML names."""
    schema = DaemonConfig.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
        "title": "benchd daemon config",
        "description": "benchd's config file (benchd run --config FILE), made by `benchd config schema`; "
        "durations take 500ms, 10s, 2m, 1h or plain seconds, sizes 512MiB, 2GiB or plain bytes.",
    }


def json_schema_text() -> str:
    """:func:`json_schema` as the text committed in ``configs/benchd.schema.json``."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def field_docs() -> list[FieldDoc]:
    """Every field of the daemon config, in document order (sections expanded, registries per type)."""
    rows: dict[str, list[tuple[str, FieldDoc]]] = {}
    for path, tag, doc in _walk(DaemonConfig, ""):
        rows.setdefault(path, []).append((tag, doc))
    return [_merge(docs) for docs in rows.values()]


def markdown_table() -> str:
    """The README's configuration table."""
    lines = ["| field | default | unit | meaning |", "|---|---|---|---|"]
    for row in field_docs():
        meaning = row.doc.replace("|", "\\|")
        lines.append(f"| `{row.path}` | {row.default} | {row.unit} | {meaning} |")
    return "\n".join(lines) + "\n"


def _walk(model: type[BaseModel], prefix: str, tag: str = "") -> Iterator[tuple[str, str, FieldDoc]]:
    defaults = model.model_construct()
    for name, field in model.model_fields.items():
        key = field.alias or name
        path = f"{prefix}{key}"
        tp, unit = _unwrap(
            Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
        )
        members = _models_in(tp)
        item = _models_in(typing.get_args(tp)[0]) if typing.get_origin(tp) is tuple else []
        if members and typing.get_origin(tp) is not dict:
            for member in members:
                yield from _walk(member, f"{path}.", tag)
            continue
        if item and not any(issubclass(model, m) for m in item) and not _default_items(defaults, name):
            for member in item:
                member_tag = _tag(member) if len(item) > 1 else tag
                yield from _walk(member, f"{path}[].", member_tag)
            continue
        doc = FieldDoc(
            path, _default(defaults, field, key), _unit(key, unit, tp, field), field.description or ""
        )
        yield path, tag, doc


def _default_items(defaults: BaseModel, name: str) -> bool:
    """True when a list-of-sections field has items by default (then it is one row, showing them)."""
    return bool(getattr(defaults, name, None))


def _merge(docs: list[tuple[str, FieldDoc]]) -> FieldDoc:
    first = docs[0][1]
    if len(docs) == 1:
        tag = docs[0][0]
        return FieldDoc(first.path, first.default, first.unit, f"{tag}: {first.doc}" if tag else first.doc)
    defaults = {d.default for _, d in docs}
    default = first.default if len(defaults) == 1 else ", ".join(f"{d.default} ({t})" for t, d in docs)
    texts = {d.doc for _, d in docs}
    doc = first.doc if len(texts) == 1 else "; ".join(f"{t}: {d.doc}" for t, d in docs)
    return FieldDoc(first.path, default, first.unit, doc)


def _tag(model: type[BaseModel]) -> str:
    field = model.model_fields.get("type")
    return str(typing.get_args(field.annotation)[0]) if field is not None else model.__name__


def _unwrap(tp: Any) -> tuple[Any, str]:
    unit = ""
    while True:
        if typing.get_origin(tp) is Annotated:
            unit = next((m.name for m in tp.__metadata__ if isinstance(m, Unit)), unit)
            tp = tp.__origin__
        elif typing.get_origin(tp) in (Union, types.UnionType) and type(None) in typing.get_args(tp):
            rest = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = rest[0] if len(rest) == 1 else Union[tuple(rest)]
        else:
            return tp, unit


def _models_in(tp: Any) -> list[type[BaseModel]]:
    tp, _ = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    if typing.get_origin(tp) in (Union, types.UnionType):
        found = [_unwrap(a)[0] for a in typing.get_args(tp)]
        return [m for m in found if isinstance(m, type) and issubclass(m, BaseModel)]
    return []


def _default(defaults: BaseModel, field: Any, key: str) -> str:
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    if "x-default" in extra:
        return str(extra["x-default"])
    if field.is_required():
        return "required"
    value = defaults.model_dump(mode="json", by_alias=True, include={_name_of(defaults, key)})[key]
    if value is None:
        return "none"
    if isinstance(value, (dict, list)):
        return f"`{yaml.safe_dump(value, default_flow_style=True, width=1000).strip()}`"
    return f"`{json.dumps(value) if isinstance(value, bool) else value}`"


def _name_of(model: BaseModel, key: str) -> str:
    return next(n for n, f in type(model).model_fields.items() if (f.alias or n) == key)


def _unit(key: str, unit: str, tp: Any, field: Any) -> str:
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    if "x-unit" in extra:
        return str(extra["x-unit"])
    if unit:
        return _UNIT_WORDS.get(unit, unit)
    item, item_unit = _unwrap(typing.get_args(tp)[0] if typing.get_origin(tp) is tuple else tp)
    if item_unit:
        return _UNIT_WORDS.get(item_unit, item_unit)
    if item not in (int, float):
        return ""
    return next((u for suffix, u in _SUFFIX_UNITS.items() if key.endswith(suffix)), "")
