"""Loading model artifacts: torch.export programs, TorchScript, and pickles only when allowed.

``.pt2`` (``torch.export.save``) is the default and the safest: loading it runs no arbitrary Python.
TorchScript archives (``torch.jit.save``) are also code-free. A full pickled model (``torch.save(model)``)
executes whatever its pickle says when loaded, so it is refused unless the caller passes
``allow_pickle=True`` for a registry it trusts.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import torch

from benchd.errors import RunError

PICKLE_REFUSED = (
    "{path} is a pickled model (torch.save(model)): loading it runs arbitrary code from the file. "
    "Export it with torch.export (.pt2) or TorchScript instead, or set allow_pickle: true for this "
    "registry if you trust where it comes from."
)


def artifact_format(path: Path) -> str:
    """Return ``export``, ``torchscript`` or ``pickle`` by looking inside the file (not at its name).

    Raises:
        RunError: ``corrupt_artifact`` when the file is none of these.
    """
    if not zipfile.is_zipfile(path):
        with path.open("rb") as f:
            head = f.read(2)
        if head[:1] == b"\x80":  # a legacy (non-zip) pickle stream
            return "pickle"
        raise RunError(f"{path} is not a torch artifact (not a zip archive or pickle)", "corrupt_artifact")
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError) as e:
        raise RunError(f"{path} is a damaged archive: {e}", "corrupt_artifact") from e
    if any("/serialized_exported_program" in n or n.endswith("archive_format") for n in names):
        return "export"
    if any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names):
        return "torchscript"
    if any(n.endswith("data.pkl") for n in names):
        return "pickle"
    raise RunError(f"{path} is a zip archive but not a torch artifact", "corrupt_artifact")


def load_model(path: str | Path, *, allow_pickle: bool = False) -> tuple[Any, str]:
    """Load an artifact and return ``(callable module, format)``; the module is in eval mode.

    Raises:
        RunError: ``artifact_not_found``, ``pickle_refused`` or ``corrupt_artifact``.
    """
    path = Path(path)
    if not path.is_file():
        raise RunError(f"artifact {path} does not exist", "artifact_not_found")
    fmt = artifact_format(path)
    try:
        if fmt == "export":
            module = torch.export.load(str(path)).module()
        elif fmt == "torchscript":
            module = torch.jit.load(str(path), map_location="cpu")
        else:
            if not allow_pickle:
                raise RunError(PICKLE_REFUSED.format(path=path), "pickle_refused")
            module = torch.load(str(path), map_location="cpu", weights_only=False)
    except RunError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure to deserialise is a corrupt artifact
        raise RunError(f"cannot load {path} ({fmt}): {type(e).__name__}: {e}", "corrupt_artifact") from e
    if not callable(module):
        raise RunError(f"{path} holds a {type(module).__name__}, not a callable model", "corrupt_artifact")
    if hasattr(module, "eval") and fmt != "export":
        module.eval()
    return module, fmt
