"""The GPU and CPU Dockerfiles: lint, COPY sources, non-root user, and a healthcheck that really probes."""

from __future__ import annotations

import fnmatch
import json
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from deploy_support import DEPLOY, REPO, tool

DOCKERFILES = [DEPLOY / "Dockerfile", DEPLOY / "Dockerfile.cpu"]


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in dockerfile.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        word, _, rest = (pending + line).partition(" ")
        out.append((word.upper(), rest.strip()))
        pending = ""
    return out


def _one(dockerfile: Path, word: str) -> str:
    found = [args for w, args in _instructions(dockerfile) if w == word]
    assert len(found) == 1, f"{dockerfile.name}: expected one {word}, found {found}"
    return found[0]


def _ignored(rel: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last pattern matching the path or a parent decides."""
    parts = rel.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        glob = pattern.lstrip("!").strip("/")
        if any(fnmatch.fnmatch(p, glob) or fnmatch.fnmatch(p, glob.removeprefix("**/")) for p in prefixes):
            ignored = not negate
    return ignored


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_finds_nothing(dockerfile):
    hadolint = tool("hadolint")
    result = subprocess.run([hadolint, "--no-color", str(dockerfile)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_copy_sources_exist_and_reach_the_build_context(dockerfile):
    ignore_file = dockerfile.with_name(dockerfile.name + ".dockerignore")
    patterns = [ln.strip() for ln in ignore_file.read_text(encoding="utf-8").splitlines()
                if ln.strip() and not ln.startswith("#")]
    copies = [shlex.split(args) for word, args in _instructions(dockerfile) if word == "COPY"]
    assert copies
    for words in copies:
        assert not any(w.startswith("--from") for w in words), "no multi-stage copies expected"
        for source in words[:-1]:
            assert (REPO / source).exists(), f"{dockerfile.name} copies {source}, missing in the repository"
            assert not _ignored(source, patterns), f"{ignore_file.name} keeps {source} out of the context"
    # The context stays small: the virtualenv and the tests never reach the builder.
    for heavy in (".venv", "tests", ".git", "daemon/benchd/__pycache__"):
        assert _ignored(heavy, patterns), heavy


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_image_runs_benchd_as_a_numeric_non_root_user(dockerfile):
    args = {name: value for name, _, value in
            (a.partition("=") for w, a in _instructions(dockerfile) if w == "ARG")}
    user = _one(dockerfile, "USER")
    for name, value in args.items():
        user = user.replace("${" + name + "}", value)
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0 and (not gid or gid.isdigit()), user
    assert json.loads(_one(dockerfile, "ENTRYPOINT")) == ["benchd"]
    assert json.loads(_one(dockerfile, "CMD")) == ["run", "--config", "/etc/benchd/benchd.yaml"]
    assert _one(dockerfile, "EXPOSE") == "9777"
    runs = " ".join(a for w, a in _instructions(dockerfile) if w == "RUN")
    assert "pip install \"torch==${TORCH_VERSION}\"" in runs and runs.index("torch==") < runs.index("/src")


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_healthcheck_passes_on_200_and_fails_on_503(dockerfile, health_server, monkeypatch):
    healthcheck = _one(dockerfile, "HEALTHCHECK")
    command = json.loads(healthcheck[healthcheck.index("CMD") + 3:].strip())
    assert command[0] == "python" and "127.0.0.1:9777/healthz" in command[-1]
    port = health_server.server_address[1]
    argv = [sys.executable, *command[1:-1], command[-1].replace(":9777/", f":{port}/")]
    assert subprocess.run(argv, capture_output=True, timeout=30).returncode == 0
    monkeypatch.setattr(_Health, "status", 503)
    assert subprocess.run(argv, capture_output=True, timeout=30).returncode != 0
