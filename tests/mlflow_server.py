"""Start a real MLflow tracking server (SQLite backend, proxied artifacts) on 127.0.0.1 for tests.

Used by tests/registry/conftest.py (a session fixture) and any other test that needs a registry. The
server runs in its own process group, and ``stop()`` ends the whole group: MLflow spawns job-runner
consumers that outlive a plain kill of the main process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import requests

MLFLOW_VERSION = "3.17.2"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_mlflow_server(
    tmp_dir: str | os.PathLike[str],
    *,
    port: int | None = None,
    timeout_s: float = 180.0,
    env: Mapping[str, str] | None = None,
) -> tuple[str, Callable[[], None]]:
    """Start ``mlflow server`` with its data under ``tmp_dir``; return (base_url, stop).

    Raises RuntimeError (with the server log's tail) when mlflow is not installed or the server does not
    answer ``GET /health`` with ``OK`` within ``timeout_s``.
    """
    tmp = Path(tmp_dir)
    tmp.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log_path = tmp / "mlflow-server.log"
    server_env = dict(os.environ)
    server_env.update(
        {
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
            "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": "Vm5oG7yE4q1Jm5m3H8kq2y6m2Jw1aB3cD4eF5gH6iJ8=",
            "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
            "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
            "NO_PROXY": "127.0.0.1,localhost",
        }
    )
    server_env.update(env or {})
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--host", "127.0.0.1", "--port", str(port),
        "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}",
        "--default-artifact-root", str(tmp / "artifacts"),
        "--artifacts-destination", str(tmp / "mlartifacts"),
        "--workers", "1",
    ]  # fmt: skip
    log = open(log_path, "wb")  # noqa: SIM115 - the server writes to it until stop()
    proc = subprocess.Popen(
        cmd,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=server_env,
        start_new_session=True,
    )

    def stop() -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever of the group is left (job runners)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        log.close()

    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            stop()
            raise RuntimeError(f"mlflow server exited with {proc.returncode}:\n{_tail(log_path)}")
        try:
            r = requests.get(f"{base_url}/health", timeout=2)
            if r.status_code == 200 and r.text.strip() == "OK":
                return base_url, stop
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            stop()
            raise RuntimeError(f"mlflow server not healthy after {timeout_s:.0f} s:\n{_tail(log_path)}")
        time.sleep(0.3)


@contextlib.contextmanager
def mlflow_server(tmp_dir: str | os.PathLike[str], **kwargs: object) -> Iterator[str]:
    """Context manager form of :func:`start_mlflow_server`; yields the base URL."""
    base_url, stop = start_mlflow_server(tmp_dir, **kwargs)  # type: ignore[arg-type]
    try:
        yield base_url
    finally:
        stop()


def _tail(path: Path, n_bytes: int = 4000) -> str:
    try:
        return path.read_bytes()[-n_bytes:].decode(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"


class MLflowSeeder:
    """Create registered models and run-backed versions with real files through MLflow's REST API."""

    def __init__(self, base_url: str, experiment: str = "benchd-tests") -> None:
        self.base_url = base_url.rstrip("/")
        self.api = self.base_url + "/api/2.0/mlflow"
        self.experiment = experiment
        self._experiment_id: str | None = None

    def _post(self, endpoint: str, body: dict) -> dict:
        r = requests.post(self.api + endpoint, json=body, timeout=30)
        assert r.status_code == 200, f"{endpoint}: {r.status_code} {r.text}"
        return r.json()

    def experiment_id(self) -> str:
        if self._experiment_id is None:
            r = requests.get(
                self.api + "/experiments/get-by-name", params={"experiment_name": self.experiment}, timeout=30
            )
            if r.status_code == 200:
                self._experiment_id = r.json()["experiment"]["experiment_id"]
            else:
                doc = self._post(
                    "/experiments/create",
                    {"name": self.experiment, "artifact_location": f"mlflow-artifacts:/{self.experiment}"},
                )
                self._experiment_id = doc["experiment_id"]
        return self._experiment_id

    def create_model(self, name: str) -> None:
        self._post("/registered-models/create", {"name": name})

    def create_version(
        self, name: str, files: Mapping[str, bytes], tags: Mapping[str, str] | None = None
    ) -> str:
        """Log ``files`` under a new run's ``model/`` folder and register them; return the version."""
        info = self._post("/runs/create", {"experiment_id": self.experiment_id()})["run"]["info"]
        root = info["artifact_uri"][len("mlflow-artifacts:/") :].lstrip("/")
        for rel, data in files.items():
            r = requests.put(
                f"{self.base_url}/api/2.0/mlflow-artifacts/artifacts/{root}/model/{rel}",
                data=data,
                timeout=30,
            )
            assert r.status_code == 200, f"upload {rel}: {r.status_code} {r.text}"
        body = {
            "name": name,
            "source": f"{info['artifact_uri']}/model",
            "run_id": info["run_id"],
            "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()],
        }
        return str(self._post("/model-versions/create", body)["model_version"]["version"])

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self._post("/registered-models/alias", {"name": name, "alias": alias, "version": version})
