"""A small MLflow REST client: auth, TLS, timeouts, and one translation of HTTP failures into RegistryError.

Credentials never appear in logs or error messages: the URL is shown without its user info, and auth is
sent as a header built from :class:`MLflowAuth` (whose ``repr`` hides the secrets).
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import os
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

import requests

from benchd.errors import RegistryError

logger = logging.getLogger(__name__)

API = "/api/2.0/mlflow"
ARTIFACTS_API = "/api/2.0/mlflow-artifacts/artifacts"


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
    ) -> None:
        self.base_url, url_auth = split_credentials(tracking_uri)
        self.auth = auth if auth is not None else (url_auth or MLflowAuth.from_env())
        self.verify_tls = verify_tls
        self.timeout_s = timeout_s
        self._headers = {"Accept": "application/json", **dict(headers or {}), **self.auth.headers()}
        self._session = session if session is not None else requests.Session()

    def get_json(
        self, endpoint: str, params: Mapping[str, Any] | None = None, *, what: str
    ) -> dict[str, Any]:
        """GET ``API + endpoint`` and return the JSON object; ``what`` names the call in errors."""
        return self._json("GET", API + endpoint, params=params, what=what)

    def get_artifacts_json(self, params: Mapping[str, Any], *, what: str) -> dict[str, Any]:
        """GET the artifact proxy's listing endpoint and return its JSON object."""
        return self._json("GET", ARTIFACTS_API, params=params, what=what)

    def stream(self, path: str, *, what: str, chunk_bytes: int = 1 << 20) -> Iterator[bytes]:
        """Yield the body of ``GET path`` (a server-relative path) in chunks."""
        response = self._request("GET", path, params=None, what=what, stream=True)
        try:
            yield from response.iter_content(chunk_bytes)
        except requests.RequestException as exc:
            raise RegistryError(
                f"MLflow registry at {self.base_url}: {what}: download broke off: {exc}"
            ) from exc
        finally:
            response.close()

    def _json(self, method: str, path: str, *, params: Mapping[str, Any] | None, what: str) -> dict[str, Any]:
        response = self._request(method, path, params=params, what=what)
        try:
            doc = response.json()
        except ValueError as exc:
            raise RegistryError(
                f"MLflow registry at {self.base_url}: {what}: answer is not JSON ({response.text[:200]!r})"
            ) from exc
        if not isinstance(doc, dict):
            raise RegistryError(f"MLflow registry at {self.base_url}: {what}: answer is not a JSON object")
        return doc

    def _request(
        self, method: str, path: str, *, params: Mapping[str, Any] | None, what: str, stream: bool = False
    ) -> requests.Response:
        url = self.base_url + path
        try:
            response = self._session.request(
                method,
                url,
                params=params,
                headers=self._headers,
                timeout=self.timeout_s,
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


def _error_fields(response: requests.Response) -> tuple[str | None, str]:
    """Return MLflow's ``error_code`` and ``message`` from an error body (or a short text excerpt)."""
    try:
        doc = response.json()
    except ValueError:
        return None, response.text[:200].strip()
    if isinstance(doc, dict):
        return doc.get("error_code"), str(doc.get("message", ""))[:500]
    return None, str(doc)[:200]
