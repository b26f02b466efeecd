"""The MLflow Model Registry watcher (MLflow 3.x REST API, plain ``requests``).

New versions: ``model-versions/search`` with ``name='X' AND version_number > <cursor>`` ordered by
``version_number ASC``, paged. Only ``READY`` versions are reported; the cursor (per model, the highest
reported version number) never passes a version still ``PENDING_REGISTRATION``, so it is picked up once
ready. Champion: the ``champion`` alias. Artifacts: ``get-download-uri``, then the ``mlflow-artifacts``
proxy (``mlflow server`` serves it by default), into ``<cache_dir>/<slug>-<hash>/<version>/`` via a temp
folder: the slug keeps the folder readable, the hash of the exact model name keeps ``a/b`` and ``a_b`` apart.

A misbehaving server is an error, never a hang: searches stop after ``max_pages`` pages and when a
``next_page_token`` repeats; artifact listings stop at ``max_listing_depth`` levels and
``max_artifact_files`` files; :meth:`MLflowWatcher.cancel` ends a poll at its next request.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import shutil
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import requests

from benchd.errors import RegistryError
from benchd.records import ModelVersion, version_sort_key
from benchd.registry.base import CursorStore, RegistryWatcher, UnknownModelVersionError
from benchd.registry.mlflow_http import ARTIFACTS_API, MLflowAPIError, MLflowAuth, MLflowClient

logger = logging.getLogger(__name__)

GIB = 1 << 30
#: MLflow error codes that mean "no such model or version".
_NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")
_SAFE = "-_.+=@ "
_SLUG_CHARS = 48


class MLflowWatcher(RegistryWatcher):
    """Watch an MLflow tracking server's Model Registry.

    Args:
        name: the registry's name (labels, cursor key).
        tracking_uri: ``http(s)://host:port``.
        cursor_store: where the per-model cursor is kept (the history store).
        models: registered model names to watch; None watches every registered model.
        champion_alias: the alias naming the baseline version.
        cache_dir: where fetched artifacts go (``<cache_dir>/<model>/<version>/``).
        max_artifact_bytes: a version whose files are larger in total is refused.
        auth: Basic or Bearer credentials; None reads ``MLFLOW_TRACKING_USERNAME``/``PASSWORD``/``TOKEN``.
        verify_tls: True, False or a CA bundle path.
        timeout_s: per-request timeout.
        headers: extra headers for every request.
        session: a ``requests.Session`` to reuse.
        page_size: ``max_results`` of each search page.
        pending_timeout_s: a version still ``PENDING_REGISTRATION`` this long after creation is skipped.
        clock: wall-clock seconds (injected by tests).
        max_pages: a search with more pages than this is an error (a server that never stops paging).
        max_listing_depth: artifact folders nested deeper than this are an error (a recursive listing).
        max_artifact_files: a version with more files than this is an error.
    """

    def __init__(
        self,
        name: str,
        tracking_uri: str,
        *,
        cache_dir: str | os.PathLike[str],
        cursor_store: CursorStore | None = None,
        models: Sequence[str] | None = None,
        champion_alias: str = "champion",
        max_artifact_bytes: int = 2 * GIB,
        auth: MLflowAuth | None = None,
        verify_tls: bool | str = True,
        timeout_s: float = 10.0,
        headers: Mapping[str, str] | None = None,
        session: requests.Session | None = None,
        page_size: int = 100,
        pending_timeout_s: float = 3600.0,
        clock: Callable[[], float] = time.time,
        max_pages: int = 1000,
        max_listing_depth: int = 16,
        max_artifact_files: int = 10_000,
    ) -> None:
        super().__init__(name, cursor_store)
        self.client = MLflowClient(
            tracking_uri,
            auth=auth,
            verify_tls=verify_tls,
            timeout_s=timeout_s,
            headers=headers,
            session=session,
        )
        self.models = list(models) if models is not None else None
        self.champion_alias = champion_alias
        self.cache_dir = Path(cache_dir)
        self.max_artifact_bytes = max_artifact_bytes
        self.page_size = page_size
        self.pending_timeout_s = pending_timeout_s
        self.max_pages = max_pages
        self.max_listing_depth = max_listing_depth
        self.max_artifact_files = max_artifact_files
        self._clock = clock
        self._cancel = threading.Event()

    @property
    def url(self) -> str:
        """The tracking server URL without credentials."""
        return self.client.base_url

    def pending(self) -> list[ModelVersion]:
        """Return READY versions above each model's cursor, oldest first per model."""
        found: list[ModelVersion] = []
        for model in self.models if self.models is not None else self.registered_models():
            found.extend(self._new_versions(model))
        return found

    def ack(self, versions: Sequence[ModelVersion]) -> None:
        """Move each model's cursor to the highest acknowledged version number."""
        top: dict[str, int] = {}
        for mv in versions:
            top[mv.model] = max(top.get(mv.model, 0), int(mv.version))
        for model, number in top.items():
            if number > self._cursor(model):
                self.cursor_store.set_cursor(self.name, model, str(number))

    def cancel(self) -> None:
        """End polls in progress at their next request (the daemon is stopping); later polls fail at once."""
        self._cancel.set()

    def registered_models(self) -> list[str]:
        """Return the names of every registered model (paged search)."""
        names: list[str] = []
        for doc in self._pages("/registered-models/search", {}, what="listing registered models"):
            names.extend(m["name"] for m in doc.get("registered_models", []) if m.get("name"))
        return names

    def champion(self, model: str) -> str | None:
        """Return the version the champion alias points to, or None when the alias (or model) is unset."""
        try:
            doc = self.client.get_json(
                "/registered-models/alias",
                {"name": model, "alias": self.champion_alias},
                what=f"reading alias {self.champion_alias!r} of model {model!r}",
                cancel=self._cancel,
            )
        except MLflowAPIError as exc:
            if exc.status in (400, 404) and exc.error_code in (
                "INVALID_PARAMETER_VALUE",
                "RESOURCE_DOES_NOT_EXIST",
            ):
                return None
            raise
        version = doc.get("model_version", {}).get("version")
        return str(version) if version is not None else None

    def describe(self) -> str:
        """The tracking server URL without credentials."""
        return self.url

    def list_versions(self, model: str) -> list[str]:
        """Every version of ``model``, in version (creation) order."""
        self._registered_model(model)
        quote = "'" if "'" not in model else '"'
        versions: list[str] = []
        for doc in self._pages(
            "/model-versions/search",
            {"filter": f"name={quote}{model}{quote}"},
            what=f"listing versions of model {model!r}",
        ):
            versions += [str(v["version"]) for v in doc.get("model_versions", []) if v.get("version")]
        return sorted(set(versions), key=version_sort_key)

    def find_version(self, model: str, version: str) -> ModelVersion:
        """The registered version, its artifact downloaded into the cache."""
        try:
            doc = self.client.get_json(
                "/model-versions/get",
                {"name": model, "version": version},
                what=f"reading model {model!r} version {version!r}",
            )
        except MLflowAPIError as e:
            if e.status in (400, 404) and e.error_code in _NOT_FOUND:
                self._registered_model(model)
                raise UnknownModelVersionError(self.name, self.describe(), model, version) from e
            raise
        raw = doc.get("model_version") or {}
        mv = self._version({"name": model, "version": version, **raw})
        return self.fetch(mv)

    def _registered_model(self, model: str) -> None:
        try:
            self.client.get_json("/registered-models/get", {"name": model}, what=f"reading model {model!r}")
        except MLflowAPIError as e:
            if e.status in (400, 404) and e.error_code in _NOT_FOUND:
                raise UnknownModelVersionError(self.name, self.describe(), model, None) from e
            raise

    def fetch(self, mv: ModelVersion) -> ModelVersion:
        """Download the version's files into ``<cache_dir>/<model>/<version>/`` (reused when present).

        Raises:
            RegistryError: the artifacts are not reachable through the server's artifact proxy, exceed
                ``max_artifact_bytes``, or the download fails. Nothing is left at the final path then.
        """
        dest = self.cache_dir / cache_folder_name(mv.model) / _safe(mv.version)
        if dest.is_dir():
            return dataclasses.replace(mv, path=str(dest))
        what = f"model {mv.model!r} version {mv.version}"
        doc = self.client.get_json(
            "/model-versions/get-download-uri",
            {"name": mv.model, "version": mv.version},
            what=f"locating {what}",
        )
        uri = str(doc.get("artifact_uri", ""))
        parsed = urllib.parse.urlsplit(uri)
        if parsed.scheme != "mlflow-artifacts":
            raise RegistryError(
                f"MLflow registry at {self.url}: {what}: artifacts at {uri!r} are not served by the tracking "
                "server's artifact proxy (mlflow-artifacts:); benchd cannot download them"
            )
        root = parsed.path.strip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{_safe(mv.version)}-", dir=dest.parent))
        try:
            files = self._list_files(root, what)
            total = sum(size for _, size in files)
            if total > self.max_artifact_bytes:
                raise RegistryError(
                    f"MLflow registry at {self.url}: {what}: artifacts are {total} bytes, over the "
                    f"{self.max_artifact_bytes}-byte limit"
                )
            budget = self.max_artifact_bytes
            for rel, _ in files:
                budget -= self._download(root, rel, tmp, budget, what)
            if not dest.is_dir():  # another fetch of the same version may have finished first
                os.replace(tmp, dest)
        except OSError as exc:
            raise RegistryError(f"MLflow registry at {self.url}: {what}: cannot write {dest}: {exc}") from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        logger.info("fetched %s %s from %s into %s", mv.model, mv.version, self.url, dest)
        return dataclasses.replace(mv, path=str(dest))

    # -- internals ----------------------------------------------------------------------------------
    def _cursor(self, model: str) -> int:
        raw = self.cursor_store.get_cursor(self.name, model)
        try:
            return int(raw) if raw else 0
        except ValueError as exc:
            raise RegistryError(f"MLflow registry {self.name}: model {model!r}: bad cursor {raw!r}") from exc

    def _new_versions(self, model: str) -> list[ModelVersion]:
        quote = "'" if "'" not in model else '"'
        params = {
            "filter": f"name={quote}{model}{quote} AND version_number > {self._cursor(model)}",
            "order_by": "version_number ASC",
        }
        found: list[ModelVersion] = []
        for doc in self._pages(
            "/model-versions/search", params, what=f"searching versions of model {model!r}"
        ):
            for raw in doc.get("model_versions", []):
                status = raw.get("status", "READY")
                if status == "READY":
                    found.append(self._version(raw))
                    continue
                age_s = self._clock() - float(raw.get("creation_timestamp", 0)) / 1000.0
                if status == "PENDING_REGISTRATION" and age_s < self.pending_timeout_s:
                    logger.debug("%s %s is still registering; later versions wait", model, raw.get("version"))
                    return found
                logger.warning(
                    "MLflow %s: skipping %s version %s (%s)", self.url, model, raw.get("version"), status
                )
        return found

    def _pages(self, endpoint: str, params: Mapping[str, Any], *, what: str) -> list[dict[str, Any]]:
        """Every page of a search; a repeated page token or more than ``max_pages`` pages is an error."""
        pages: list[dict[str, Any]] = []
        token: str | None = None
        tokens_seen: set[str] = set()
        while True:
            query = {**params, "max_results": self.page_size, **({"page_token": token} if token else {})}
            doc = self.client.get_json(endpoint, query, what=what, cancel=self._cancel)
            pages.append(doc)
            token = doc.get("next_page_token") or None
            if token is None:
                return pages
            if not isinstance(token, str) or token in tokens_seen:
                raise RegistryError(
                    f"MLflow registry at {self.url}: {what}: the server repeated page token "
                    f"{str(token)[:40]!r} after {len(pages)} pages (a paging loop); giving up on this poll"
                )
            if len(pages) >= self.max_pages:
                raise RegistryError(
                    f"MLflow registry at {self.url}: {what}: more than {self.max_pages} pages of "
                    f"{self.page_size}; giving up on this poll"
                )
            tokens_seen.add(token)

    def _version(self, raw: Mapping[str, Any]) -> ModelVersion:
        tags = raw.get("tags") or []
        created = raw.get("creation_timestamp")
        return ModelVersion(
            model=str(raw["name"]),
            version=str(raw["version"]),
            registry=self.name,
            source_uri=str(raw.get("source", "")),
            created_unix_s=float(created) / 1000.0 if created is not None else None,
            aliases=tuple(str(a) for a in raw.get("aliases") or ()),
            tags=tuple(sorted((str(t.get("key")), str(t.get("value"))) for t in tags if isinstance(t, dict))),
        )

    def _list_files(self, root: str, what: str) -> list[tuple[str, int]]:
        """Return (relative path, size) of every file under ``root`` through the artifact proxy.

        Folders are walked breadth first with a depth and a file-count cap, so a listing that names a
        folder inside itself (or an endless tree) is an error instead of endless recursion.
        """
        out: list[tuple[str, int]] = []
        folders: list[tuple[str, int]] = [("", 0)]  # (prefix, depth)
        visited: set[str] = set()
        while folders:
            prefix, depth = folders.pop(0)
            path = f"{root}/{prefix}".rstrip("/")
            doc = self.client.get_artifacts_json({"path": path}, what=f"listing files of {what}")
            for entry in doc.get("files", []):
                rel = f"{prefix}{_entry_path(entry, self.url, what)}"
                _check_relative(rel, self.url, what)
                if not entry.get("is_dir"):
                    out.append((rel, int(entry.get("file_size") or 0)))
                elif rel in visited or depth + 1 > self.max_listing_depth:
                    raise RegistryError(
                        f"MLflow registry at {self.url}: {what}: artifact folders nest deeper than "
                        f"{self.max_listing_depth} levels at {rel[:200]!r} (a recursive listing?)"
                    )
                else:
                    visited.add(rel)
                    folders.append((rel + "/", depth + 1))
                if len(out) + len(folders) > self.max_artifact_files:
                    raise RegistryError(
                        f"MLflow registry at {self.url}: {what}: more than {self.max_artifact_files} "
                        "artifact files; not a model version"
                    )
        if not out:
            raise RegistryError(f"MLflow registry at {self.url}: {what}: no files under {root!r}")
        return out

    def _download(self, root: str, rel: str, into: Path, budget_bytes: int, what: str) -> int:
        target = into / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        url_path = f"{ARTIFACTS_API}/{urllib.parse.quote(f'{root}/{rel}')}"
        written = 0
        with open(target, "wb") as fh:
            for chunk in self.client.stream(url_path, what=f"downloading {rel} of {what}"):
                written += len(chunk)
                if written > budget_bytes:
                    raise RegistryError(
                        f"MLflow registry at {self.url}: {what}: artifacts exceed the "
                        f"{self.max_artifact_bytes}-byte limit"
                    )
                fh.write(chunk)
        return written


def cache_folder_name(model: str) -> str:
    """The cache folder of a model: a readable slug of its name plus a hash of the exact name.

    Model names may hold ``/`` and characters a path cannot; a slug alone maps ``a/b`` and ``a_b`` to one
    folder (and one version's cached artifact to the other model), the hash keeps every name apart.
    """
    digest = hashlib.sha256(model.encode("utf-8")).hexdigest()[:16]
    return f"{_safe(model)[:_SLUG_CHARS]}-{digest}"


def _entry_path(entry: Any, url: str, what: str) -> str:
    name = entry.get("path") if isinstance(entry, dict) else None
    if not isinstance(name, str) or not name:
        raise RegistryError(f"MLflow registry at {url}: {what}: artifact listing entry without a path")
    return name


def _safe(name: str) -> str:
    """Return ``name`` usable as one path component (model names may hold '/')."""
    cleaned = "".join(c if c.isalnum() or c in _SAFE else "_" for c in name).strip()
    return cleaned if cleaned not in ("", ".", "..") else "_"


def _check_relative(rel: str, url: str, what: str) -> None:
    parts = Path(rel).parts
    if Path(rel).is_absolute() or ".." in parts:
        raise RegistryError(f"MLflow registry at {url}: {what}: refusing artifact path {rel!r}")
