"""MLflow webhooks through the real HTTPService (harness: api_support.py): verify, then poll that registry.

poll_now is recorded as the handler calls it, before the answer is sent, so "refused deliveries poll
nothing" is shown without racing a poll thread.
"""

from __future__ import annotations

import json
import time

import pytest

from benchd.registry.webhook import sign_mlflow_payload
from tests.daemon.conftest import wait_until
from tests.service.api_support import HOOK, SECRET, SECRET_ENV, Served


def _delivery(delivery_id: str, body: bytes, secret: str = SECRET, age_s: float = 0.0) -> dict[str, str]:
    timestamp = str(int(time.time() - age_s))
    return {
        "Content-Type": "application/json",
        "X-MLflow-Delivery-Id": delivery_id,
        "X-MLflow-Timestamp": timestamp,
        "X-MLflow-Signature": sign_mlflow_payload(secret.encode(), delivery_id, timestamp, body),
    }


EVENT = json.dumps(
    {
        "entity": "model_version",
        "action": "created",
        "timestamp": "2026-01-01T00:00:00Z",
        "data": {"name": "m"},
    }
).encode()


def test_a_verified_webhook_polls_its_registry_now_and_only_that_one(served: Served) -> None:
    served.hook_registry.publish("m", "1")
    served.registry.publish("other", "1")
    status, body, _ = served.request("POST", HOOK, EVENT, _delivery("d-1", EVENT))
    assert (status, body) == (202, {"status": "accepted"})
    assert served.scheduler.asked == ["ml"]
    wait_until(lambda: served.store.get_version("m", "1"), 30, "the poll the webhook triggered")
    assert served.stats.polls()[("ml", "ok")] == 1
    assert ("local", "ok") not in served.stats.polls()
    assert [(r.model, r.version) for r in served.store.list_runs()] == [("m", "1")]


@pytest.mark.parametrize(
    ("headers", "status", "error"),
    [
        (_delivery("d-2", EVENT, secret="wrong"), 401, "bad_signature"),
        ({"Content-Type": "application/json"}, 401, "bad_signature"),
        (_delivery("d-3", EVENT, age_s=3600), 400, "bad_delivery"),
        (_delivery("d-4", b'{"entity": "model_version"}'), 401, "bad_signature"),  # signed another body
    ],
)
def test_forged_stale_or_unsigned_webhooks_are_refused_and_poll_nothing(
    served: Served, headers: dict[str, str], status: int, error: str
) -> None:
    served.hook_registry.publish("m", "1")
    got, body, _ = served.request("POST", HOOK, EVENT, headers)
    assert (got, body["error"]) == (status, error)
    assert served.scheduler.asked == []  # asked before the answer is sent: no race with a poll thread
    assert served.stats.polls() == {}


def test_a_replayed_or_malformed_delivery_is_refused(served: Served) -> None:
    headers = _delivery("d-5", EVENT)
    assert served.request("POST", HOOK, EVENT, headers)[0] == 202
    status, body, _ = served.request("POST", HOOK, EVENT, headers)
    assert (status, body["error"]) == (400, "bad_delivery")
    not_json = b"{oops"
    status, body, _ = served.request("POST", HOOK, not_json, _delivery("d-6", not_json))
    assert (status, body["error"]) == (400, "bad_delivery") and "not JSON" in body["reason"]
    assert served.scheduler.asked == ["ml"]  # the first delivery only


def test_webhooks_for_registries_without_a_secret(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    status, body, _ = served.request("POST", HOOK + "?registry=local", EVENT, _delivery("d-7", EVENT))
    assert (status, body["error"]) == (404, "no_webhook") and "'local'" in body["reason"]
    monkeypatch.delenv(SECRET_ENV)
    status, body, _ = served.request("POST", HOOK, EVENT, _delivery("d-8", EVENT))
    assert (status, body["error"]) == (503, "no_secret") and SECRET_ENV in body["reason"]
