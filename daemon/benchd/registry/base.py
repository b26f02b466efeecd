"""The registry watcher interface, and the cursor store watchers persist their position in.

A watcher turns a registry (a folder, an MLflow server) into :class:`ModelVersion` records. ``poll()``
returns each complete version exactly once across restarts: the position is kept in a cursor store (the
history store is one). ``poll()`` is ``pending()`` followed by ``ack()``; a caller that must not lose a
version across a crash calls ``pending()``, records the versions durably, then ``ack()``s them.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from benchd.errors import RegistryError
from benchd.records import ModelVersion, version_sort_key
from benchd.registry.version_folder import SPEC_NAME as SPEC_NAME
from benchd.registry.version_folder import contained_path as contained_path
from benchd.registry.version_folder import is_version_folder as is_version_folder

#: Conventional artifact file names (used only for a version's creation time). Which files make a
#: version is decided by :func:`benchd.registry.version_folder.is_version_folder`, by content, for every
#: watcher, ``benchd bench`` and the worker alike.
ARTIFACT_NAMES = ("model.pt2", "model.pt", "model.ts", "model.pkl")


@runtime_checkable
class CursorStore(Protocol):
    """Where watchers keep their cursors: ``get_cursor``/``set_cursor`` of the history store."""

    def get_cursor(self, registry: str, key: str) -> str | None:
        """Return the value stored under (registry, key), or None."""

    def set_cursor(self, registry: str, key: str, value: str) -> None:
        """Store the value under (registry, key) durably."""


class MemoryCursorStore:
    """A cursor store in memory (one-shot commands such as ``benchd check``; tests)."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def get_cursor(self, registry: str, key: str) -> str | None:
        """Return the value stored under (registry, key), or None."""
        with self._lock:
            return self._values.get((registry, key))

    def set_cursor(self, registry: str, key: str, value: str) -> None:
        """Store the value under (registry, key)."""
        with self._lock:
            self._values[(registry, key)] = value


class PollCancelledError(RegistryError):
    """A registry call was abandoned: the daemon is shutting down (:meth:`RegistryWatcher.cancel`)."""


def is_path_component(name: str) -> bool:
    """True when ``name`` is one plain path component: not empty, ``.``, ``..``, and no separator or NUL."""
    return bool(name) and name not in (".", "..") and not any(c in name for c in ("/", "\\", "\0"))


class UnknownModelVersionError(RegistryError):
    """The registry answered, and it has no such model, or no such version of it."""

    def __init__(self, registry: str, where: str, model: str, version: str | None) -> None:
        self.registry = registry
        self.model = model
        self.version = version
        if version is None:
            message = f"registry {registry!r} ({where}) has no model {model!r}"
        else:
            message = f"model {model!r} has no version {version!r} in registry {registry!r} ({where})"
        super().__init__(message)


class RegistryWatcher(abc.ABC):
    """One model registry: reports new complete versions, the champion pointer, and fetches artifacts.

    Subclasses implement :meth:`pending`, :meth:`ack`, :meth:`champion`, :meth:`fetch`,
    :meth:`list_versions`, :meth:`find_version` and :meth:`describe`; callers never ask which kind of
    watcher they hold. Every method raises :class:`benchd.errors.RegistryError` (never a raw library
    error) when the registry cannot be read; the scheduler counts, backs off and retries.
    """

    def __init__(self, name: str, cursor_store: CursorStore | None = None) -> None:
        self.name = name
        self.cursor_store: CursorStore = cursor_store if cursor_store is not None else MemoryCursorStore()

    def poll(self) -> list[ModelVersion]:
        """Return the complete versions not reported before (oldest first per model), and remember them."""
        versions = self.pending()
        self.ack(versions)
        return versions

    @abc.abstractmethod
    def pending(self) -> list[ModelVersion]:
        """Return the complete versions not yet acknowledged, without moving the cursor."""

    @abc.abstractmethod
    def ack(self, versions: Sequence[ModelVersion]) -> None:
        """Move the cursor past ``versions`` (from :meth:`pending`) so they are never reported again."""

    @abc.abstractmethod
    def champion(self, model: str) -> str | None:
        """Return the version the registry's baseline pointer names, or None when there is none."""

    @abc.abstractmethod
    def fetch(self, mv: ModelVersion) -> ModelVersion:
        """Make the version's files available locally; return a copy whose ``path`` is that folder."""

    @abc.abstractmethod
    def describe(self) -> str:
        """Where the registry lives, for messages (a folder, a URL without credentials)."""

    @abc.abstractmethod
    def list_versions(self, model: str) -> list[str]:
        """Every version of ``model`` the registry holds, in version order (:func:`version_sort_key`).

        Raises:
            UnknownModelVersionError: the registry has no such model.
            RegistryError: the registry cannot be read.
        """

    @abc.abstractmethod
    def find_version(self, model: str, version: str) -> ModelVersion:
        """The version as the registry describes it, fetched: ``path`` is a local folder.

        Raises:
            UnknownModelVersionError: no such model or version (the message says which).
            RegistryError: the registry cannot be read or the artifact cannot be fetched.
        """

    def cancel(self) -> None:
        """Abandon registry calls in progress at their next request or chunk, and refuse new ones.

        Called once when the daemon shuts down, so a stop never waits on a slow or misbehaving registry;
        the calls then raise :class:`PollCancelledError`. Watchers whose calls are local do nothing.
        """
        return None

    def previous_version(self, model: str, version: str) -> str | None:
        """The highest version of ``model`` lower than ``version`` in version order, or None.

        Raises:
            UnknownModelVersionError: the registry has no such model.
            RegistryError: the registry cannot be read.
        """
        key = version_sort_key(version)
        older = [v for v in self.list_versions(model) if version_sort_key(v) < key]
        return older[-1] if older else None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"
