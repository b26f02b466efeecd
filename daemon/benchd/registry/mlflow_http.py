"""A small MLflow REST client: auth, TLS, timeouts, and one translation of HTTP failures into RegistryError.

Credentials never appear in logs or error messages: the URL is shown without its user info, and auth is
sent as a header built from :class:`MLflowAuth` (whose ``repr`` hides the secrets).

A misbehaving server cannot hold a caller: connecting waits at most ``connect_timeout_s``, each read
``timeout_s``, a JSON answer must arrive whole within ``answer_deadline_s`` and stay under
``max_answer_bytes``, and a ``cancel`` event (set when the daemon stops) is checked before every request
and between chunks of every answer, so a stop never waits for a slow or endless server.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import os
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

import requests

from benchd.errors import RegistryError
from benchd.registry.base import PollCancelledError

logger = logging.getLogger(__name__)

API = "/api/2.0/mlflow"
ARTIFACTS_API = "/api/2.0/mlflow-artifacts/artifacts"
#: The largest JSON answer read (a search page of 1000 versions with tags is a few MB).
MAX_ANSWER_BYTES = 64 << 20
_CHUNK_BYTES = 64 << 10


class MLflowAPIError(RegistryError):
    """MLflow answered with an HTTP error; ``status`` and ``error_code`` (e.g. RESOURCE_DOES_NOT_EXIST)."""

    def __init__(self, message: str, status: int, error_code: str | None) -> None:
        self.status = status
        self.error_code = error_code
        super().__init__(message)


@dataclasses.dataclass(frozen=True)
class MLflowAuth:
    """Credentials: HTTP Basic (``username``/``password``) or a Bearer ``token``; none when all are empty."""

    username: str | None = dataclasses.field(default=None, repr=False)
    password: str | None = dataclasses.field(default=None, repr=False)
    token: str | None = dataclasses.field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MLflowAuth:
        """Read ``MLFLOW_TRACKING_TOKEN`` or ``MLFLOW_TRACKING_USERNAME``/``_PASSWORD`` like MLflow does."""
        env = os.environ if env is None else env
        return cls(
            username=env.get("MLFLOW_TRACKING_USERNAME") or None,
            password=env.get("MLFLOW_TRACKING_PASSWORD") or None,
            token=env.get("MLFLOW_TRACKING_TOKEN") or None,
        )

    def headers(self) -> dict[str, str]:
        """Return the ``Authorization`` header (Bearer wins over Basic), or nothing."""
        if self.token:
            return {"Authorization": f"Bearer {self.token}"}
        if self.username:
            pair = f"{self.username}:{self.password or ''}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
        return {}

    def __repr__(self) -> str:
        kind = "bearer" if self.token else "basic" if self.username else "none"
        return f"MLflowAuth({kind})"


def split_credentials(url: str) -> tuple[str, MLflowAuth | None]:
    """Return ``url`` without ``user:password@`` and the Basic auth it carried (or None)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return url.rstrip("/"), None
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    clean = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)).rstrip(
        "/"
    )
    return clean, MLflowAuth(
        username=urllib.parse.unquote(parts.username), password=urllib.parse.unquote(parts.password or "")
    )


class MLflowClient:
    """GET/POST JSON and stream files from one MLflow tracking server.

    Args:
        tracking_uri: ``http(s)://host:port[/prefix]``; user info in it becomes Basic auth.
        auth: credentials; None reads the environment (:meth:`MLflowAuth.from_env`).
        verify_tls: True, False, or a CA bundle path (``requests``' ``verify``).
        timeout_s: connect and read timeout of each request.
        headers: extra headers sent with every request (a proxy's API key...).
        session: a ``requests.Session`` to reuse (tests, connection pooling).
        connect_timeout_s: how long to wait for the TCP/TLS connection (at most ``timeout_s``).
        answer_deadline_s: a JSON answer must arrive whole within this long (None: 6 x ``timeout_s``).
        max_answer_bytes: a larger JSON answer is an error.
    """

    def __init__(
        self,
        tracking_uri: str,
        *,
        auth: MLflowAuth | None = None,
        verify_tls: bool | str = True,
        timeout_s: float = 10.0,
        headers: Mapping[str, str] | None = None,
        session: requests.Session | None = None,
        connect_timeout_s: float = 5.0,
        answer_deadline_s: float | None = None,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        self.base_url, url_auth = split_credentials(tracking_uri)
        self.auth = auth if auth is not None else (url_auth or MLflowAuth.from_env())
        self.verify_tls = verify_tls
        self.timeout_s = timeout_s
        self.connect_timeout_s = min(connect_timeout_s, timeout_s)
        self.answer_deadline_s = answer_deadline_s if answer_deadline_s is not None else 6 * timeout_s
        self.max_answer_bytes = max_answer_bytes
        self._headers = {"Accept": "application/json", **dict(headers or {}), **self.auth.headers()}
        self._session = session if session is not None else requests.Session()

    def get_json(
        self,
        endpoint: str,
        params: Mapping[str, Any] | None = None,
        *,
        what: str,
        cancel: threading.Event | None = None,
    ) -> dict[str, Any]:
        """GET ``API + endpoint`` and return the JSON object; ``what`` names the call in errors.

        Raises:
            PollCancelledError: ``cancel`` was set before or during the call.
            RegistryError: the server is unreachable, answers an error, too slowly, or not a JSON object.
        """
        return self._json("GET", API + endpoint, params=params, what=what, cancel=cancel)

    def get_artifacts_json(
        self, params: Mapping[str, Any], *, what: str, cancel: threading.Event | None = None
    ) -> dict[str, Any]:
        """GET the artifact proxy's listing endpoint; return its JSON object (errors as :meth:`get_json`)."""
        return self._json("GET", ARTIFACTS_API, params=params, what=what, cancel=cancel)

    def stream(
        self, path: str, *, what: str, chunk_bytes: int = 1 << 20, cancel: threading.Event | None = None
    ) -> Iterator[bytes]:
        """Yield the body of ``GET path`` (server-relative) in chunks; ``cancel`` stops between them."""
        response = self._request("GET", path, params=None, what=what, stream=True, cancel=cancel)
        try:
            for chunk in response.iter_content(chunk_bytes):
                self._check(cancel, what)
                yield chunk
        except requests.RequestException as exc:
            raise RegistryError(
                f"MLflow registry at {self.base_url}: {what}: download broke off: {exc}"
            ) from exc
        finally:
            response.close()

    def _check(self, cancel: threading.Event | None, what: str) -> None:
        if cancel is not None and cancel.is_set():
            raise PollCancelledError(f"MLflow registry at {self.base_url}: {what}: cancelled (shutting down)")

    def _json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None,
        what: str,
        cancel: threading.Event | None = None,
    ) -> dict[str, Any]:
        started_s = time.monotonic()
        response = self._request(method, path, params=params, what=what, stream=True, cancel=cancel)
        raw = bytearray()
        try:
            for chunk in _chunks_as_they_come(response):
                self._check(cancel, what)
                raw += chunk
                if len(raw) > self.max_answer_bytes:
                    raise RegistryError(
                        f"MLflow registry at {self.base_url}: {what}: answer is over "
                        f"{self.max_answer_bytes} bytes"
                    )
                if time.monotonic() - started_s > self.answer_deadline_s:
                    raise RegistryError(
                        f"MLflow registry at {self.base_url}: {what}: answer did not arrive within "
                        f"{self.answer_deadline_s:g} s"
                    )
        except requests.RequestException as exc:
            raise RegistryError(
                f"MLflow registry at {self.base_url}: {what}: answer broke off: {exc}"
            ) from exc
        finally:
            response.close()
        try:
            doc = json.loads(bytes(raw))
        except (ValueError, RecursionError) as exc:
            excerpt = bytes(raw[:200]).decode("utf-8", "replace")
            raise RegistryError(
                f"MLflow registry at {self.base_url}: {what}: answer is not JSON ({excerpt!r})"
            ) from exc
        if not isinstance(doc, dict):
            raise RegistryError(f"MLflow registry at {self.base_url}: {what}: answer is not a JSON object")
        return doc

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None,
        what: str,
        stream: bool = False,
        cancel: threading.Event | None = None,
    ) -> requests.Response:
        self._check(cancel, what)
        url = self.base_url + path
        try:
            response = self._session.request(
                method,
                url,
                params=params,
                headers=self._headers,
                timeout=(self.connect_timeout_s, self.timeout_s),
                verify=self.verify_tls,
                stream=stream,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise RegistryError(
                f"MLflow registry at {self.base_url} is unreachable ({what}): {type(exc).__name__}: {exc}"
            ) from exc
        if response.status_code >= 300:
            code, message = _error_fields(response)
            response.close()
            raise MLflowAPIError(
                f"MLflow registry at {self.base_url}: {what}: HTTP {response.status_code}"
                + (f" {code}" if code else "")
                + (f": {message}" if message else ""),
                status=response.status_code,
                error_code=code,
            )
        return response


def _chunks_as_they_come(response: requests.Response) -> Iterator[bytes]:
    """The body in pieces as each arrives (``read1``); whole 64 KiB chunks where ``read1`` is missing.

    Piece by piece, a server dribbling bytes still lets the caller check its deadline and cancel event.
    """
    read1 = getattr(response.raw, "read1", None)
    if read1 is None:  # urllib3 < 2
        yield from response.iter_content(_CHUNK_BYTES)
        return
    while chunk := read1(_CHUNK_BYTES, decode_content=True):
        yield chunk


def _error_fields(response: requests.Response) -> tuple[str | None, str]:
    """Return MLflow's ``error_code`` and ``message`` from an error body (or a short text excerpt)."""
    try:
        doc = response.json()
    except ValueError:
        return None, response.text[:200].strip()
    if isinstance(doc, dict):
        return doc.get("error_code"), str(doc.get("message", ""))[:500]
    return None, str(doc)[:200]
