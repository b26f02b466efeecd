"""The daemon's HTTP API beside /metrics: health, runs, CI/CD requests and MLflow webhooks.

Routes (all JSON; errors are ``{"error": ..., "reason": ...}``):

- ``GET /healthz``: 200 while the daemon runs.
- ``GET /readyz``: 200 once the store is open and every registry was polled once; 503 before.
- ``GET /api/v1/runs?model=&state=&limit=``: recent runs, newest first.
- ``GET /api/v1/runs/{id}``: one run, with the verdicts of its version once decided
  (``verdicts_pending`` is true while the run has ended but its verdict is still being decided).
- ``POST /api/v1/runs`` (``Authorization: Bearer <token>``): ``{"model", "version", "baseline"?, "force"?}``
  queues a run of a version a registry knows; 202 ``{"run_id"}``.
- ``POST /api/v1/hooks/mlflow[?registry=NAME]``: an MLflow webhook delivery (HMAC-verified); it only makes
  the registry's next poll happen now, since deliveries can be lost.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from benchd.config import DaemonConfig, MLflowRegistryConfig
from benchd.history import HistoryStore, RunRecord
from benchd.metrics.server import HTTPError, Request, Response, Route, json_response
from benchd.records import (
    COMPLETED_RUN_STATES,
    QUEUED,
    RUNNING,
    TERMINAL_RUN_STATES,
    ModelVersion,
    to_dict,
)
from benchd.registry.webhook import (
    DELIVERY_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    ReplayGuard,
    WebhookAuthError,
    WebhookError,
    WebhookPayloadError,
    parse_mlflow_event,
    verify_mlflow_signature,
)
from benchd.service.scheduler import PRIORITY_API, Scheduler

logger = logging.getLogger(__name__)

EnqueueFn = Callable[..., list[int]]
#: Run ids are 64-bit integers in every store: 18 digits always fit, so a longer id names no run.
MAX_RUN_ID_DIGITS = 18


class API:
    """Request handlers; :meth:`routes` gives the routing table for the HTTP service."""

    def __init__(
        self,
        config: DaemonConfig,
        store: HistoryStore,
        scheduler: Scheduler,
        enqueue: EnqueueFn,
        find_version: Callable[[str, str], ModelVersion | None],
        is_ready: Callable[[], bool],
        is_busy: Callable[[int], bool] = lambda run_id: False,
    ) -> None:
        self.config = config
        self.store = store
        self.scheduler = scheduler
        self.enqueue = enqueue
        self.find_version = find_version
        self.is_ready = is_ready
        self.is_busy = is_busy
        self.replays = ReplayGuard()
        self.started_unix_s = time.time()

    def routes(self) -> list[Route]:
        """The API's routes."""
        return [
            Route("GET", "/healthz", self.healthz),
            Route("GET", "/readyz", self.readyz),
            Route("GET", "/api/v1/runs", self.list_runs),
            Route("GET", "/api/v1/runs/", self.get_run, prefix=True),
            Route("POST", "/api/v1/runs", self.post_run),
            Route("POST", "/api/v1/hooks/mlflow", self.mlflow_hook),
        ]

    def healthz(self, request: Request) -> Response:
        """Liveness."""
        return json_response({"status": "ok", "uptime_s": round(time.time() - self.started_unix_s, 1)})

    def readyz(self, request: Request) -> Response:
        """Readiness: every registry polled once."""
        if self.is_ready():
            return json_response({"status": "ready"})
        return json_response({"status": "starting", "reason": "registries not polled yet"}, status=503)

    def list_runs(self, request: Request) -> Response:
        """Recent runs."""
        try:
            limit = max(1, min(1000, int(request.query.get("limit", "50"))))
        except ValueError as e:
            raise HTTPError(400, "bad_request", "limit must be an integer") from e
        runs = self.store.list_runs(
            model=request.query.get("model") or None, state=request.query.get("state") or None, limit=limit
        )
        return json_response({"runs": [r.to_json() for r in runs]})

    def get_run(self, request: Request) -> Response:
        """One run, with its version's verdicts."""
        tail = request.path.removeprefix("/api/v1/runs/").strip("/")
        if not (tail.isascii() and tail.isdigit()):
            raise HTTPError(404, "not_found", f"no run {tail[:40]!r}: run ids are integers")
        if len(tail) > MAX_RUN_ID_DIGITS:  # larger than any id the store can hold (64-bit)
            raise HTTPError(
                404, "not_found", f"no run {tail[:40]}...: run ids have at most {MAX_RUN_ID_DIGITS} digits"
            )
        record = self.store.get_run(int(tail))
        if record is None:
            raise HTTPError(404, "not_found", f"no run {tail}")
        return json_response(self._run_json(record))

    def _run_json(self, record: RunRecord) -> dict[str, Any]:
        body = record.to_json()
        rows = self.store.verdict_rows(record.model, candidate_version=record.version, limit=50)
        body["verdicts"] = (
            [
                to_dict(row.verdict)
                for row in rows
                if row.verdict.decided_unix_s >= (record.started_unix_s or 0)
            ]
            if record.state in TERMINAL_RUN_STATES
            else []
        )
        body["verdicts_pending"] = (
            record.state in COMPLETED_RUN_STATES
            and self.config.verdict.mode != "off"
            and self.is_busy(record.id)
        )
        return body

    def post_run(self, request: Request) -> Response:
        """Queue a run requested by CI/CD."""
        self._check_token(request)
        body = request.json()
        if not isinstance(body, dict):
            raise HTTPError(400, "bad_request", "expected a JSON object")
        model, version = body.get("model"), body.get("version")
        if not isinstance(model, str) or not model or not _is_version(version):
            raise HTTPError(400, "bad_request", "'model' and 'version' are required")
        baseline = body.get("baseline")
        if baseline is not None and not _is_version(baseline):
            raise HTTPError(400, "bad_request", "'baseline' must be a version or an alias")
        force = body.get("force", True)
        if not isinstance(force, bool):
            raise HTTPError(400, "bad_request", f"'force' must be true or false, got {force!r}")
        mv = self.find_version(model, str(version))
        if mv is None:
            raise HTTPError(404, "unknown_version", f"no registry knows model {model!r} version {version!r}")
        ids = self.enqueue(
            mv,
            PRIORITY_API,
            "requested over the API",
            force,
            str(baseline) if baseline is not None else None,
        )
        if not ids:
            pending = [
                r
                for r in self.store.list_runs(model=model, limit=200)
                if r.version == str(version) and r.state in (QUEUED, RUNNING)
            ]
            if not pending:
                raise HTTPError(409, "not_queued", "the run could not be queued")
            for run in pending:  # queued a moment ago by a poll: make it the run that was asked for
                if run.state == QUEUED:
                    self.store.promote_queued_run(
                        run.id, PRIORITY_API, str(baseline) if baseline is not None else None
                    )
            ids = [pending[0].id]
        return json_response({"run_id": ids[0], "run_ids": ids}, status=202)

    def _check_token(self, request: Request) -> None:
        expected = os.environ.get(self.config.http.api_token_env, "")
        if not expected:
            raise HTTPError(
                403,
                "api_disabled",
                f"the API token is not configured: set {self.config.http.api_token_env} for the daemon",
            )
        given = request.header("authorization")
        if not given.startswith("Bearer ") or not hmac.compare_digest(given[7:].encode(), expected.encode()):
            raise HTTPError(
                401,
                "unauthorized",
                "missing or wrong bearer token",
                headers={"WWW-Authenticate": 'Bearer realm="benchd"'},
            )

    def mlflow_hook(self, request: Request) -> Response:
        """Verify an MLflow delivery and poll that registry now."""
        name = request.query.get("registry")
        candidates = [
            r
            for r in self.config.registries
            if isinstance(r, MLflowRegistryConfig)
            and r.webhook_secret_env
            and (name is None or r.name == name)
        ]
        if not candidates:
            raise HTTPError(
                404,
                "no_webhook",
                "no MLflow registry here has a webhook secret configured"
                + (f" under the name {name!r}" if name else ""),
            )
        if len(candidates) > 1:
            raise HTTPError(400, "ambiguous", "several MLflow registries take webhooks: add ?registry=NAME")
        registry = candidates[0]
        secret_env = registry.webhook_secret_env or ""
        secret = os.environ.get(secret_env, "")
        if not secret:
            raise HTTPError(503, "no_secret", f"{secret_env} is not set")
        delivery = request.header(DELIVERY_ID_HEADER.lower())
        try:
            verify_mlflow_signature(
                secret.encode(),
                delivery,
                request.header(TIMESTAMP_HEADER.lower()),
                request.body,
                request.header(SIGNATURE_HEADER.lower()),
                now_s=time.time(),
            )
            event = parse_mlflow_event(request.body)
            # only now, with the delivery accepted, does its id enter the replay cache: a refused
            # delivery's retry (MLflow resends the same id) must still be taken
            self.replays.check(delivery)
        except WebhookAuthError as e:
            logger.warning("webhook for %s refused: %s", registry.name, e)
            raise HTTPError(401, "bad_signature", str(e)) from e
        except (WebhookPayloadError, WebhookError) as e:
            logger.warning("webhook for %s refused: %s", registry.name, e)
            raise HTTPError(400, "bad_delivery", str(e)) from e
        if event is not None and event.is_new_version:
            logger.info(
                "webhook: %s/%s created in %s; polling now", event.model, event.version, registry.name
            )
        try:
            self.scheduler.poll_now(registry.name)
        except Exception:
            self.replays.forget(delivery)  # not acted on: MLflow's retry must be accepted
            raise
        return json_response({"status": "accepted"}, status=202)


def _is_version(value: object) -> bool:
    """A version in a JSON body: a non-empty string, or an integer (never a boolean)."""
    if isinstance(value, bool):
        return False
    return (isinstance(value, str) and value != "") or isinstance(value, int)
