"""What makes a model version folder: ``benchd.yaml`` plus one artifact, recognised by its content.

The one place that decides it, shared by the registry watchers (daemon side: no torch here), ``benchd
bench`` and the worker. An artifact is a file or folder whose *content* says it is a model, whatever it
is called:

- ``export``: a ``torch.export`` program (``torch.export.save``): a zip with ``models/*.json``;
- ``aoti``: an AOTInductor package (``torch._inductor.aoti_compile_and_package``): a zip with
  ``data/aotinductor/``, i.e. compiled native code;
- ``torchscript``: ``torch.jit.save``: a zip with ``code/`` and ``constants.pkl``;
- ``hf``: a Hugging Face folder (``save_pretrained``): ``config.json`` plus ``*.safetensors`` (or pickled
  ``pytorch_model*.bin``), either the version folder itself or a subfolder ``artifact:`` names;
- ``pickle``: ``torch.save(model)`` (a zip with ``data.pkl``, or a legacy pickle stream).

``artifact:`` in ``benchd.yaml`` names the artifact when the folder holds several; it (and ``dataset:``)
must stay inside the version folder once symlinks are resolved.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from benchd.errors import RunError

#: The per-version benchmark description written next to the artifact.
SPEC_NAME = "benchd.yaml"
#: Artifact formats, as results and ``benchd.yaml``'s ``format:`` name them.
FORMATS = ("export", "aoti", "torchscript", "hf", "pickle")
#: How messages describe each format.
FORMAT_WORDS = {
    "export": "a torch.export program",
    "aoti": "an AOTInductor package (compiled native code)",
    "torchscript": "a TorchScript archive",
    "hf": "a Hugging Face model folder",
    "pickle": "a pickled model (torch.save)",
}
HF_CONFIG = "config.json"
_HF_WEIGHT_GLOBS = ("*.safetensors", "pytorch_model*.bin")
_NOT_ARTIFACTS = (SPEC_NAME, "READY", HF_CONFIG)


class ArtifactRef(NamedTuple):
    """A version's artifact: where it is and what it holds."""

    path: Path
    fmt: str


def _zip_format(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    parts = [n.split("/") for n in names]
    if any(p[1:3] == ["data", "aotinductor"] or p[:2] == ["data", "aotinductor"] for p in parts):
        return "aoti"
    # <root>/archive_format, <root>/models/<name>.json (pt2 archive), or the pre-2.8 single-program layout
    if any(
        (len(p) == 2 and p[1] == "archive_format")
        or (len(p) == 3 and p[1] == "models" and p[2].endswith(".json"))
        or p[-1] == "serialized_exported_program.json"
        for p in parts
    ):
        return "export"
    if any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names):
        return "torchscript"
    if any(n.endswith("data.pkl") for n in names):
        return "pickle"
    return None


def is_hf_folder(path: Path) -> bool:
    """True when ``path`` is a folder holding ``config.json`` and Hugging Face weight files."""
    return (
        path.is_dir()
        and (path / HF_CONFIG).is_file()
        and any(next(path.glob(g), None) is not None for g in _HF_WEIGHT_GLOBS)
    )


def sniff_format(path: Path) -> str | None:
    """The format of the file or folder at ``path`` judged by its content, or None if it is no model."""
    if path.is_dir():
        return "hf" if is_hf_folder(path) else None
    try:
        if zipfile.is_zipfile(path):
            return _zip_format(path)
        with path.open("rb") as f:
            head = f.read(2)
    except OSError:
        return None
    # A legacy torch.save stream starts with the pickle PROTO opcode and a protocol number 2..5.
    return "pickle" if len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5 else None


def contained_path(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path | None:
    """``path`` with every symlink resolved, or None when that lies outside ``root`` (resolved too).

    A symlink that points outside the registry (``<root>/m/v -> /etc``) or a version folder would let an
    entry name any file on the host; callers refuse such paths. A path that does not exist resolves as far
    as it can; a symlink loop is outside.
    """
    try:
        real_root = Path(root).resolve()
        real = Path(path).resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return None
    return real if real == real_root or real.is_relative_to(real_root) else None


def resolve_inside(folder: Path, relative: str, field: str) -> Path:
    """Resolve ``relative`` (from ``benchd.yaml`` field ``field``) and refuse anything outside ``folder``.

    Raises:
        RunError: ``invalid_model_spec`` when the path (or a symlink on the way) leaves the folder.
    """
    target = contained_path(folder, folder / relative)
    if target is None:
        try:
            where = f"resolves to {(folder / relative).resolve()}"
        except (OSError, RuntimeError):
            where = "is a symlink loop"
        raise RunError(
            f"{folder / SPEC_NAME}: {field}: {relative!r} {where}, outside the version folder "
            f"{folder.resolve()}; artifacts and datasets must live inside it",
            "invalid_model_spec",
        )
    return target


def _candidates(folder: Path) -> list[ArtifactRef]:
    found = [ArtifactRef(folder, "hf")] if is_hf_folder(folder) else []
    hf_weights = {p for g in _HF_WEIGHT_GLOBS for p in folder.glob(g)} if found else set()
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or p.name in _NOT_ARTIFACTS or p in hf_weights:
            continue
        if p.is_file():
            fmt = sniff_format(p)
        elif p.is_dir():
            fmt = "hf" if is_hf_folder(p) else None
        else:
            fmt = None
        if fmt is not None:
            # a symlink to a model elsewhere is not part of this version: refuse rather than load it
            found.append(ArtifactRef(resolve_inside(folder, p.name, f"artifact {p.name!r} (found)"), fmt))
    return found


def find_artifact(folder: Path, named: str | None) -> ArtifactRef:
    """Return the version's artifact: the one ``artifact:`` names, else the only one the folder holds.

    Raises:
        RunError: ``artifact_not_found`` (missing or ambiguous), ``corrupt_artifact`` (the named file is
            no model), or ``invalid_model_spec`` (``artifact:`` leaves the folder).
    """
    spec_path = folder / SPEC_NAME
    if named:
        path = resolve_inside(folder, named, "artifact")
        if not path.exists():
            raise RunError(f"artifact {named!r} named in {spec_path} does not exist", "artifact_not_found")
        fmt = sniff_format(path)
        if fmt is None:
            what = "folder without config.json and *.safetensors" if path.is_dir() else "file"
            raise RunError(
                f"artifact {named!r} named in {spec_path} is a {what} that is not a model "
                f"(expected one of: {', '.join(FORMAT_WORDS.values())}); is it damaged or half-copied?",
                "corrupt_artifact",
            )
        return ArtifactRef(path, fmt)
    found = _candidates(folder)
    if not found:
        raise RunError(
            f"no model artifact in {folder}: expected {', '.join(FORMAT_WORDS.values())}",
            "artifact_not_found",
        )
    if len(found) > 1:
        names = ", ".join(f"{'.' if r.path == folder else r.path.name} ({r.fmt})" for r in found)
        raise RunError(
            f"several artifacts in {folder} ({names}); name one with 'artifact:' in {SPEC_NAME}",
            "artifact_not_found",
        )
    return found[0]


def read_spec_data(folder: Path) -> Any:
    """The parsed ``benchd.yaml`` of ``folder``.

    Raises:
        RunError: ``invalid_model_spec`` when it is missing or not valid YAML.
    """
    spec_path = folder / SPEC_NAME
    if not spec_path.is_file():
        raise RunError(
            f"{spec_path} is missing: a version folder needs the artifact plus {SPEC_NAME} "
            "describing its inputs",
            "invalid_model_spec",
        )
    try:
        return yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise RunError(f"{spec_path}: not valid YAML: {e}", "invalid_model_spec") from e
    except OSError as e:
        raise RunError(f"cannot read {spec_path}: {e}", "invalid_model_spec") from e


def version_artifact(folder: Path) -> ArtifactRef | None:
    """The artifact when ``folder`` is a complete version folder (spec plus artifact), else None.

    Never raises: the registry asks this of half-copied folders too.
    """
    try:
        data = read_spec_data(folder)
        named = data.get("artifact") if isinstance(data, dict) else None
        return find_artifact(folder, named if isinstance(named, str) else None)
    except (RunError, OSError):
        return None


def is_version_folder(folder: str | Path) -> bool:
    """True when ``folder`` holds ``benchd.yaml`` and the artifact it describes (or the only one)."""
    return version_artifact(Path(folder)) is not None
