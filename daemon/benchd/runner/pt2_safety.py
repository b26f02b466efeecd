"""Inspect a ``.pt2`` archive for pickles before torch opens it.

torch's pt2 loader unpickles with ``torch.load(weights_only=False)`` every weight or constant entry whose
payload config says ``use_pickle: true``, ``pickle.loads`` opaque constants, and falls back to a full
unpickler when its restricted one rejects the sample inputs (or a legacy ``.pt`` weights file). Any of
these runs code from the file. So, reading the zip with :mod:`zipfile` and :mod:`pickletools` only (no
torch, nothing executed):

- a payload entry marked ``use_pickle`` (weights, constants, custom or opaque objects) is refused unless
  pickles are allowed;
- every pickle torch always reads (sample inputs, legacy weight/constant files, the pre-2.8 layout) must
  reference nothing but tensor-rebuilding globals, else it is refused too.
"""

from __future__ import annotations

import io
import json
import pickletools
import re
import zipfile
from pathlib import Path
from typing import cast

from benchd.errors import RunError

#: Globals a plain tensor pickle (torch.save of tensors, tuples, dicts) references.
_SAFE_GLOBALS = {
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_tensor_v3"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch", "Size"),
    ("torch", "device"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "slice"),
}
_SAFE_TORCH_NAME = re.compile(r"^(\w+Storage|u?int\d+|float\d+|bfloat16|bool|complex\d+)$")
_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING"}
_MEMO_PUT = {"MEMOIZE", "BINPUT", "LONG_BINPUT", "PUT"}
_MEMO_GET = {"BINGET", "LONG_BINGET", "GET"}
_REFUSED_OPS = {"INST", "OBJ", "EXT1", "EXT2", "EXT4"}
_PICKLE_DIRS = ("data/sample_inputs/",)
_LEGACY_NAMES = ("serialized_state_dict.json", "serialized_constants.json", "serialized_example_inputs.json")
_ALLOW_HINT = (
    "Loading it would run code from the file. Re-export it with torch.export.save from plain tensors, or "
    "set allow_pickle: true for this registry if you trust where it comes from."
)


def _is_safe_global(module: str, name: str) -> bool:
    return (module, name) in _SAFE_GLOBALS or (module == "torch" and bool(_SAFE_TORCH_NAME.match(name)))


def unsafe_globals(pickle_bytes: bytes) -> list[str]:
    """Globals (``module.name``) a pickle would import beyond plain tensors; ``["?"]`` if unreadable.

    A ``STACK_GLOBAL`` counts as known only when the two strings it takes were pushed right before it
    (as torch.save writes them); anything else is reported, never guessed.
    """
    found: list[str] = []
    memo: dict[int, str | None] = {}
    recent: list[str | None] = []  # what the last ops pushed: a string, or None for anything else
    try:
        for op, arg, _ in pickletools.genops(pickle_bytes):
            name = op.name
            if name in _REFUSED_OPS:
                found.append(f"{name} {arg}")
            elif name == "GLOBAL":
                module, _, attr = str(arg).partition(" ")
                if not _is_safe_global(module, attr):
                    found.append(f"{module}.{attr}")
            elif name == "STACK_GLOBAL":
                pair = recent[-2:]
                if len(pair) == 2 and all(isinstance(p, str) for p in pair):
                    if not _is_safe_global(str(pair[0]), str(pair[1])):
                        found.append(f"{pair[0]}.{pair[1]}")
                else:
                    found.append("STACK_GLOBAL of computed name")
            if name in _STRING_OPS:
                recent.append(str(arg))
            elif name in _MEMO_PUT:
                key = len(memo) if name == "MEMOIZE" else int(cast(int, arg))  # PUT's arg is its index
                memo[key] = recent[-1] if recent else None
                continue  # storing in the memo leaves the stack as it is
            elif name in _MEMO_GET:
                recent.append(memo.get(int(cast(int, arg))))  # GET's arg is its index
            else:
                recent.append(None)
            del recent[:-2]
    except Exception as e:  # noqa: BLE001 - an unparsable pickle is not proven safe
        return [f"? (unreadable pickle: {e})"]
    return found


def _pickle_payload(data: bytes) -> bytes:
    """The pickle stream of a torch.save blob (zip with ``data.pkl``) or the bytes themselves."""
    if data[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(data)) as inner:
            pkl = [n for n in inner.namelist() if n.endswith("data.pkl")]
            return inner.read(pkl[0]) if pkl else b""
    return data


def _payload_configs(names: list[str]) -> list[str]:
    return [n for n in names if n.endswith("_weights_config.json") or n.endswith("_constants_config.json")]


def check_pt2_pickles(path: Path, *, allow_pickle: bool) -> None:
    """Refuse ``path`` when loading it would unpickle anything but plain tensors (unless allowed).

    Raises:
        RunError: ``pickle_refused`` naming the entry; ``corrupt_artifact`` when the zip is unreadable.
    """
    if allow_pickle:
        return
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            for config_name in _payload_configs(names):
                try:
                    config = json.loads(z.read(config_name)).get("config", {})
                except (ValueError, AttributeError) as e:
                    raise RunError(f"{path}: {config_name} is not valid JSON: {e}", "corrupt_artifact") from e
                for fqn, meta in config.items():
                    if isinstance(meta, dict) and meta.get("use_pickle"):
                        entry = f"{config_name.rsplit('/', 1)[0]}/{meta.get('path_name')}"
                        raise RunError(
                            f"{path} holds a pickled entry {entry} (for {fqn!r}, marked use_pickle in "
                            f"{config_name}). {_ALLOW_HINT}",
                            "pickle_refused",
                        )
            for name in names:
                if not _always_unpickled(name):
                    continue
                bad = unsafe_globals(_pickle_payload(z.read(name)))
                if bad:
                    raise RunError(
                        f"{path}: entry {name} is a pickle that references {', '.join(sorted(set(bad)))} "
                        f"(not plain tensors). {_ALLOW_HINT}",
                        "pickle_refused",
                    )
    except (zipfile.BadZipFile, OSError, KeyError) as e:
        raise RunError(f"{path} is a damaged archive: {e}", "corrupt_artifact") from e


def _always_unpickled(name: str) -> bool:
    """Entries torch unpickles on every load (not raw tensor bytes, not compiled code)."""
    if "/data/aotinductor/" in name or name.startswith("data/aotinductor/"):
        return False
    inner = name.split("/", 1)[1] if "/" in name else name
    if any(inner.startswith(d) for d in _PICKLE_DIRS) or inner in _LEGACY_NAMES:
        return True
    # legacy single-file weights/constants (data/weights/model.pt) and any other pickle file
    return inner.endswith((".pt", ".pkl"))
