"""Finding a model version in the daemon config's registries, for commands that run on this machine.

``check`` (local mode) and ``calibrate`` look versions up here rather than asking a running daemon.
"""

from __future__ import annotations

from typing import Any

from benchd.config import DaemonConfig, RegistryConfig
from benchd.errors import BenchdError
from benchd.records import ModelVersion
from benchd.registry import MemoryCursorStore, RegistryWatcher
from benchd.registry.factory import build_watcher

Watchers = list[tuple[RegistryWatcher, RegistryConfig]]


def watchers_of(config: DaemonConfig, only: str | None = None) -> Watchers:
    """A watcher for each configured registry (only the one named ``only`` when given).

    Raises:
        BenchdError: no registry has that name.
    """
    registries = [r for r in config.registries if only in (None, r.name)]
    if not registries:
        names = ", ".join(r.name for r in config.registries) or "none"
        raise BenchdError(f"no registry named {only!r} in {config.source} (configured: {names})")
    cursor = MemoryCursorStore()
    return [(build_watcher(r, data_dir=config.data_dir, cursor_store=cursor), r) for r in registries]


def find_version(watchers: Watchers, model: str, version: str) -> tuple[ModelVersion, RegistryWatcher, Any]:
    """The version (fetched), the watcher that has it and its registry's config.

    Raises:
        BenchdError: no configured registry has it (the sentence says what each one answered).
    """
    problems = []
    for watcher, cfg in watchers:
        try:
            return watcher.find_version(model, version), watcher, cfg
        except BenchdError as e:
            problems.append(str(e))
    if len(problems) == 1:
        raise BenchdError(problems[0])
    answers = "; ".join(problems)
    raise BenchdError(f"model {model!r} version {version!r} is in no configured registry: {answers}")
