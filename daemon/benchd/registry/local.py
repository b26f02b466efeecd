"""The local-folder registry: ``<root>/<model>/<version>/`` folders holding an artifact and ``benchd.yaml``.

A version counts only once it is complete, so a half-copied folder is never reported: either a ``READY``
marker file is present, or ``benchd.yaml`` and the artifact it describes are present (recognised by content,
:mod:`benchd.registry.version_folder`: a ``.pt2`` program or AOTInductor package, TorchScript, a Hugging
Face folder, a pickle) and every file's name, size and mtime stayed the same for ``settle_s``.
The champion (baseline pointer) of a model is ``<root>/<model>/champion``: a text file naming a version,
or a symlink to a version folder. The cursor is, per model, the JSON list of versions already reported.

Every version folder is resolved (symlinks included) and must lie inside the registry root, and its
``benchd.yaml``, ``READY`` and artifact files inside the version folder: a link pointing elsewhere on the
host is refused with one WARNING naming it, and the version is skipped.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from benchd.errors import RegistryError
from benchd.records import ModelVersion, version_sort_key
from benchd.registry.base import (
    ARTIFACT_NAMES,
    SPEC_NAME,
    CursorStore,
    RegistryWatcher,
    UnknownModelVersionError,
    contained_path,
    is_path_component,
    is_version_folder,
)

logger = logging.getLogger(__name__)

READY_MARKER = "READY"
CHAMPION_FILE = "champion"
_MAX_FILES = 10_000  # a version folder with more files than this is not a model folder

Snapshot = tuple[tuple[str, int, int], ...]


class LocalFolderWatcher(RegistryWatcher):
    """Watch ``root`` for new complete model version folders.

    Args:
        name: the registry's name (labels, cursor key).
        root: the folder holding ``<model>/<version>/`` folders.
        cursor_store: where the set of reported versions is kept (the history store).
        settle_s: how long a folder without ``READY`` must stay unchanged before it counts.
        clock: seconds, monotonic enough to time the settle period (injected by tests).
    """

    def __init__(
        self,
        name: str,
        root: str | os.PathLike[str],
        *,
        cursor_store: CursorStore | None = None,
        settle_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(name, cursor_store)
        self.root = Path(root)
        self.settle_s = settle_s
        self._clock = clock
        self._seen: dict[str, set[str]] = {}
        self._settling: dict[tuple[str, str], tuple[Snapshot, float]] = {}
        self._missing_logged = False
        self._refused: set[tuple[str, str]] = set()

    def pending(self) -> list[ModelVersion]:
        """Return complete version folders not reported before, sorted by model then version."""
        if not self.root.exists():
            if not self._missing_logged:
                logger.info("local registry %s: %s does not exist (yet)", self.name, self.root)
                self._missing_logged = True
            return []
        self._missing_logged = False
        found: list[ModelVersion] = []
        for model_dir in self._subdirs(self.root):
            seen = self._seen_versions(model_dir.name)
            for version_dir in self._subdirs(model_dir):
                if version_dir.name == CHAMPION_FILE or version_dir.name in seen:
                    continue
                if self._contained(model_dir.name, version_dir) is None:
                    continue
                mv = self._complete_version(model_dir.name, version_dir)
                if mv is not None:
                    found.append(mv)
        found.sort(key=lambda mv: (mv.model, version_sort_key(mv.version)))
        return found

    def ack(self, versions: Sequence[ModelVersion]) -> None:
        """Remember ``versions`` as reported (persisted per model in the cursor store)."""
        by_model: dict[str, list[str]] = {}
        for mv in versions:
            by_model.setdefault(mv.model, []).append(mv.version)
        for model, new in by_model.items():
            seen = self._seen_versions(model)
            seen.update(new)
            self.cursor_store.set_cursor(self.name, model, json.dumps(sorted(seen, key=version_sort_key)))
            for version in new:
                self._settling.pop((model, version), None)

    def champion(self, model: str) -> str | None:
        """Return the version ``<root>/<model>/champion`` names (file text or symlink target), or None."""
        if not is_path_component(model):
            return None
        pointer = self.root / model / CHAMPION_FILE
        try:
            if pointer.is_symlink():
                target = os.readlink(pointer)
                name = Path(target.rstrip("/")).name
            elif pointer.is_file():
                lines = pointer.read_text(encoding="utf-8").strip().splitlines()
                name = lines[0].strip() if lines else ""
            else:
                return None
        except OSError as exc:
            raise RegistryError(f"local registry {self.name}: cannot read {pointer}: {exc}") from exc
        return name or None

    def fetch(self, mv: ModelVersion) -> ModelVersion:
        """Return ``mv`` with ``path`` set to its version folder (already local).

        Raises:
            RegistryError: the folder is gone, or it (or a link in it) leads outside the registry root.
        """
        if not (is_path_component(mv.model) and is_path_component(mv.version)):
            raise RegistryError(
                f"local registry {self.name}: {mv.model!r} version {mv.version!r} is not a folder name"
            )
        folder = self.root / mv.model / mv.version
        if not folder.is_dir():
            raise RegistryError(
                f"local registry {self.name}: model {mv.model} version {mv.version}: {folder} is gone"
            )
        real = self._contained(mv.model, folder)
        if real is None:
            raise RegistryError(
                f"local registry {self.name}: model {mv.model} version {mv.version}: {folder} leads outside "
                f"the registry root {self.root}; refused"
            )
        return dataclasses.replace(mv, path=str(real))

    def describe(self) -> str:
        """The registry's root folder."""
        return str(self.root)

    def list_versions(self, model: str) -> list[str]:
        """Every version folder of ``model`` inside the root, complete or not, in version order."""
        folder = self.root / model
        if not is_path_component(model) or not folder.is_dir():
            raise UnknownModelVersionError(self.name, self.describe(), model, None)
        try:
            names = [e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith(".")]
        except OSError as e:
            raise RegistryError(f"local registry {self.name}: cannot list {folder}: {e}") from e
        inside = (n for n in names if n != CHAMPION_FILE and self._contained(model, folder / n) is not None)
        return sorted(inside, key=version_sort_key)

    def find_version(self, model: str, version: str) -> ModelVersion:
        """The version folder ``<root>/<model>/<version>``."""
        if not is_path_component(model) or not (self.root / model).is_dir():
            raise UnknownModelVersionError(self.name, self.describe(), model, None)
        if (
            not is_path_component(version)
            or not (self.root / model / version).is_dir()
            or version == CHAMPION_FILE
        ):
            raise UnknownModelVersionError(self.name, self.describe(), model, version)
        champion = self.champion(model)
        mv = ModelVersion(
            model=model,
            version=version,
            registry=self.name,
            aliases=("champion",) if champion == version else (),
        )
        return self.fetch(mv)

    def _seen_versions(self, model: str) -> set[str]:
        seen = self._seen.get(model)
        if seen is None:
            raw = self.cursor_store.get_cursor(self.name, model)
            try:
                seen = set(json.loads(raw)) if raw else set()
            except (ValueError, TypeError) as exc:
                raise RegistryError(
                    f"local registry {self.name}: model {model}: bad cursor {raw!r}: {exc}"
                ) from exc
            self._seen[model] = seen
        return seen

    def _contained(self, model: str, folder: Path) -> Path | None:
        """The resolved version folder, or None (logged once) when it or its files lead outside."""
        real = contained_path(self.root, folder)
        if real is None:
            self._refuse(model, folder, f"it resolves outside the registry root {self.root}")
            return None
        for name in (SPEC_NAME, READY_MARKER, *ARTIFACT_NAMES):
            entry = folder / name
            if entry.is_symlink() and contained_path(real, entry) is None:
                self._refuse(model, folder, f"{name} is a link that leads outside the version folder")
                return None
        return real

    def _refuse(self, model: str, folder: Path, why: str) -> None:
        key = (model, folder.name)
        if key not in self._refused:
            self._refused.add(key)
            logger.warning(
                "local registry %s: skipping model %s version %s: %s (links must stay inside the registry)",
                self.name,
                model,
                folder.name,
                why,
            )

    def _subdirs(self, folder: Path) -> list[Path]:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            raise RegistryError(f"local registry {self.name}: cannot list {folder}: {exc}") from exc
        return [Path(e.path) for e in entries if not e.name.startswith(".") and e.is_dir()]

    def _complete_version(self, model: str, folder: Path) -> ModelVersion | None:
        """Return the version if the folder is complete now, else None (and remember its snapshot)."""
        key = (model, folder.name)
        if (folder / READY_MARKER).is_file():
            return self._version(model, folder)
        if not is_version_folder(folder):  # the one notion of a version folder (by content)
            self._settling.pop(key, None)
            return None
        snap = self._snapshot(folder)
        now = self._clock()
        previous = self._settling.get(key)
        if previous is None or previous[0] != snap:
            self._settling[key] = (snap, now)
            previous = self._settling[key]
        if now - previous[1] >= self.settle_s:
            return self._version(model, folder)
        logger.debug("local registry %s: %s %s still settling", self.name, model, folder.name)
        return None

    def _snapshot(self, folder: Path) -> Snapshot:
        entries: list[tuple[str, int, int]] = []
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames.sort()
            for fname in sorted(filenames):
                path = os.path.join(dirpath, fname)
                try:
                    st = os.stat(path)
                except OSError:  # vanished while we looked: not settled
                    entries.append((os.path.relpath(path, folder), -1, -1))
                    continue
                entries.append((os.path.relpath(path, folder), st.st_size, st.st_mtime_ns))
                if len(entries) > _MAX_FILES:
                    return tuple(entries)
        return tuple(entries)

    def _version(self, model: str, folder: Path) -> ModelVersion:
        try:
            created = max(os.stat(folder / n).st_mtime for n in (SPEC_NAME, READY_MARKER, *ARTIFACT_NAMES)
                          if (folder / n).exists())  # fmt: skip
        except (OSError, ValueError):
            created = None
        champion = self.champion(model)
        return ModelVersion(
            model=model,
            version=folder.name,
            registry=self.name,
            path=str(folder.resolve()),
            source_uri=folder.resolve().as_uri(),
            created_unix_s=created,
            aliases=("champion",) if champion == folder.name else (),
        )
