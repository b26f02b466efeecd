"""MLflow webhook deliveries: signature check, replay guard, payload parsing. Pure; no HTTP server here.

MLflow (>= 3.3) POSTs ``{"entity", "action", "timestamp", "data"}`` with the headers
``X-MLflow-Delivery-Id`` (uuid), ``X-MLflow-Timestamp`` (unix s) and ``X-MLflow-Signature``
(``v1,<base64 HMAC-SHA256(secret, "<delivery_id>.<timestamp>.<raw body>")>``). Deliveries are
fire-and-forget on the MLflow side, so a webhook only triggers a poll; polling stays the source of truth.
The HTTP layer maps :class:`WebhookAuthError` to 401 and the other errors to 400.
"""

from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import hmac
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from benchd.errors import RegistryError

SIGNATURE_HEADER = "X-MLflow-Signature"
DELIVERY_ID_HEADER = "X-MLflow-Delivery-Id"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
SIGNATURE_VERSION = "v1"
#: Entities whose deliveries name a model (``data.name``); others (prompts, budgets) are ignored.
MODEL_ENTITIES = ("registered_model", "model_version", "model_version_tag", "model_version_alias")


class WebhookError(RegistryError):
    """A webhook delivery was rejected."""


class WebhookAuthError(WebhookError):
    """The delivery's signature is missing or wrong (answer 401)."""


class WebhookStaleError(WebhookError):
    """The delivery's timestamp is too old, in the future, or unreadable (answer 400)."""


class WebhookReplayError(WebhookStaleError):
    """The delivery id was seen before (answer 400)."""


class WebhookPayloadError(WebhookError):
    """The body is not a well-formed MLflow webhook payload (answer 400)."""


def sign_mlflow_payload(secret: bytes, delivery_id: str, timestamp: str, body: bytes) -> str:
    """Return the ``X-MLflow-Signature`` value MLflow sends for this delivery (tests, ``benchd`` tools)."""
    mac = hmac.new(secret, f"{delivery_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(mac).decode('ascii')}"


def verify_mlflow_signature(
    secret: bytes,
    delivery_id: str,
    timestamp: str,
    body: bytes,
    signature_header: str,
    *,
    now_s: float,
    max_age_s: float = 300.0,
) -> None:
    """Check a delivery's HMAC signature, then its age; return None when it is authentic and fresh.

    ``signature_header`` may hold several space-separated ``v1,<base64>`` entries (secret rotation on the
    sender); one match is enough. Comparison is constant-time.

    Raises:
        WebhookAuthError: no secret configured, headers missing, or no signature matches.
        WebhookStaleError: the timestamp is not an integer or is more than ``max_age_s`` from ``now_s``.
    """
    if not secret:
        raise WebhookAuthError("webhook secret is not configured; refusing unsigned deliveries")
    if not delivery_id or not timestamp or not signature_header:
        raise WebhookAuthError(
            f"missing {DELIVERY_ID_HEADER}, {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header"
        )
    expected = hmac.new(secret, f"{delivery_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    matched = False
    for entry in signature_header.split():
        version, _, value = entry.partition(",")
        if version != SIGNATURE_VERSION:
            continue
        try:
            given = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
        matched |= hmac.compare_digest(given, expected)
    if not matched:
        raise WebhookAuthError(
            f"{SIGNATURE_HEADER} does not match the delivery (wrong secret or altered body)"
        )
    try:
        sent_s = int(timestamp)
    except ValueError as exc:
        raise WebhookStaleError(f"{TIMESTAMP_HEADER} {timestamp!r} is not unix seconds") from exc
    if abs(now_s - sent_s) > max_age_s:
        raise WebhookStaleError(
            f"delivery timestamp {sent_s} is {now_s - sent_s:.0f} s from now (allowed: {max_age_s:.0f} s)"
        )


class ReplayGuard:
    """Remembers the last ``max_entries`` delivery ids and rejects one seen before (thread-safe).

    Combined with the timestamp window of :func:`verify_mlflow_signature`, ``max_entries`` must exceed
    the deliveries expected within ``max_age_s``. Call :meth:`check` only once a delivery is accepted
    (signature, age and payload all good), and :meth:`forget` if acting on it fails after that, so a
    refused or failed delivery's retry (MLflow resends the same delivery id) is taken.
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._ids: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._lock = threading.Lock()

    def check(self, delivery_id: str) -> None:
        """Remember ``delivery_id``; raise :class:`WebhookReplayError` if it was seen before."""
        with self._lock:
            if delivery_id in self._ids:
                raise WebhookReplayError(f"delivery {delivery_id} was already received (replay)")
            self._ids[delivery_id] = None
            while len(self._ids) > self.max_entries:
                self._ids.popitem(last=False)

    def forget(self, delivery_id: str) -> None:
        """Drop ``delivery_id`` so a retry of a delivery that failed to be handled is accepted."""
        with self._lock:
            self._ids.pop(delivery_id, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._ids)


@dataclass(frozen=True)
class WebhookEvent:
    """What a delivery says happened: ``entity``/``action`` in lower case, the model and maybe a version."""

    entity: str
    action: str
    model: str
    version: str | None = None
    alias: str | None = None
    timestamp: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def is_new_version(self) -> bool:
        """True for ``model_version`` ``created``: the event that should trigger a benchmark."""
        return self.entity == "model_version" and self.action == "created"


def parse_mlflow_event(body: bytes) -> WebhookEvent | None:
    """Parse a delivery body; None for events that are not about a registered model (prompts, budgets).

    Raises:
        WebhookPayloadError: the body is not JSON, not an object, or lacks entity/action/data fields.
    """
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise WebhookPayloadError(f"webhook body is not JSON: {exc}") from exc
    except RecursionError as exc:
        raise WebhookPayloadError("webhook body is nested too deeply to decode") from exc
    if not isinstance(doc, dict):
        raise WebhookPayloadError("webhook body must be a JSON object")
    entity, action, data = doc.get("entity"), doc.get("action"), doc.get("data")
    if not isinstance(entity, str) or not isinstance(action, str) or not isinstance(data, dict):
        raise WebhookPayloadError("webhook body needs string 'entity' and 'action' and an object 'data'")
    entity, action = entity.lower(), action.lower()
    if entity not in MODEL_ENTITIES:
        return None
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise WebhookPayloadError(f"{entity} event without a model 'name'")
    version = data.get("version")
    if version is not None and not isinstance(version, (str, int)):
        raise WebhookPayloadError(f"{entity} event with a bad 'version': {version!r}")
    alias = data.get("alias")
    timestamp = doc.get("timestamp")
    return WebhookEvent(
        entity=entity,
        action=action,
        model=name,
        version=str(version) if version is not None else None,
        alias=alias if isinstance(alias, str) else None,
        timestamp=timestamp if isinstance(timestamp, str) else None,
        data=data,
    )
