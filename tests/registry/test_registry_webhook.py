"""MLflow webhook deliveries: signatures, staleness, replays, payload parsing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from benchd.registry import (
    ReplayGuard,
    WebhookAuthError,
    WebhookPayloadError,
    WebhookReplayError,
    WebhookStaleError,
    parse_mlflow_event,
    verify_mlflow_signature,
)
from benchd.registry.webhook import sign_mlflow_payload

SECRET = b"s3cret-webhook-key"
NOW_S = 1_750_000_000.0
BODY = json.dumps(
    {
        "entity": "model_version",
        "action": "created",
        "timestamp": "2025-06-15T12:00:00+00:00",
        "data": {
            "name": "resnet50",
            "version": "7",
            "source": "models:/m-1",
            "run_id": "abc",
            "tags": {},
            "description": "",
        },
    }
).encode()


def _sig(
    delivery_id: str = "d-1", timestamp: str = str(int(NOW_S)), body: bytes = BODY, secret: bytes = SECRET
) -> str:
    # computed independently of benchd: MLflow's own formula
    mac = hmac.new(secret, f"{delivery_id}.{timestamp}.{body.decode()}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def test_a_valid_signature_passes_and_matches_the_signer() -> None:
    ts = str(int(NOW_S) - 10)
    assert sign_mlflow_payload(SECRET, "d-1", ts, BODY) == _sig(timestamp=ts)
    verify_mlflow_signature(SECRET, "d-1", ts, BODY, _sig(timestamp=ts), now_s=NOW_S)
    # rotation: any one of several signatures may match
    verify_mlflow_signature(SECRET, "d-1", ts, BODY, f"v1,AAAA {_sig(timestamp=ts)}", now_s=NOW_S)


@pytest.mark.parametrize(
    "change",
    ["secret", "body", "delivery_id", "timestamp", "scheme", "garbage", "empty"],
)
def test_forged_or_altered_deliveries_are_refused_as_auth_errors(change: str) -> None:
    ts = str(int(NOW_S))
    args = {"delivery_id": "d-1", "timestamp": ts, "body": BODY}
    header = _sig()
    if change == "secret":
        header = _sig(secret=b"wrong")
    elif change == "body":
        args["body"] = BODY.replace(b'"7"', b'"8"')
    elif change == "delivery_id":
        args["delivery_id"] = "d-2"
    elif change == "timestamp":
        args["timestamp"] = str(int(NOW_S) - 1)
    elif change == "scheme":
        header = header.replace("v1,", "v0,")
    elif change == "garbage":
        header = "v1,!!!not-base64!!!"
    elif change == "empty":
        header = ""
    with pytest.raises(WebhookAuthError):
        verify_mlflow_signature(
            SECRET, args["delivery_id"], args["timestamp"], args["body"], header, now_s=NOW_S
        )


def test_no_secret_configured_refuses_everything() -> None:
    with pytest.raises(WebhookAuthError, match="secret"):
        verify_mlflow_signature(b"", "d-1", str(int(NOW_S)), BODY, _sig(), now_s=NOW_S)


@pytest.mark.parametrize("offset_s", [-301, 301, -3600])
def test_stale_or_future_timestamps_are_refused(offset_s: int) -> None:
    ts = str(int(NOW_S) + offset_s)
    with pytest.raises(WebhookStaleError, match="300 s"):
        verify_mlflow_signature(SECRET, "d-1", ts, BODY, _sig(timestamp=ts), now_s=NOW_S, max_age_s=300)
    verify_mlflow_signature(SECRET, "d-1", ts, BODY, _sig(timestamp=ts), now_s=NOW_S, max_age_s=7200)


def test_a_signed_but_non_numeric_timestamp_is_stale() -> None:
    with pytest.raises(WebhookStaleError, match="unix seconds"):
        verify_mlflow_signature(SECRET, "d-1", "yesterday", BODY, _sig(timestamp="yesterday"), now_s=NOW_S)


def test_replay_guard_rejects_repeats_forgets_on_request_and_is_bounded() -> None:
    guard = ReplayGuard(max_entries=3)
    guard.check("a")
    with pytest.raises(WebhookReplayError, match="replay"):
        guard.check("a")
    assert issubclass(WebhookReplayError, WebhookStaleError)  # the HTTP layer answers 400
    guard.forget("a")
    guard.check("a")  # MLflow's retry after we failed to handle it
    for d in ("b", "c", "d"):
        guard.check(d)
    assert len(guard) == 3
    guard.check("a")  # evicted as the oldest: remembered again
    with pytest.raises(ValueError):
        ReplayGuard(0)


def test_parse_model_version_created() -> None:
    event = parse_mlflow_event(BODY)
    assert event is not None
    assert (event.entity, event.action, event.model, event.version) == (
        "model_version",
        "created",
        "resnet50",
        "7",
    )
    assert event.is_new_version and event.data["run_id"] == "abc"


def test_parse_alias_tag_and_model_events_and_ignore_others() -> None:
    alias = parse_mlflow_event(
        b'{"entity":"model_version_alias","action":"created","data":{"name":"m","alias":"champion","version":3}}'
    )
    assert (alias.model, alias.version, alias.alias, alias.is_new_version) == ("m", "3", "champion", False)
    model = parse_mlflow_event(b'{"entity":"REGISTERED_MODEL","action":"CREATED","data":{"name":"m"}}')
    assert (model.entity, model.action, model.version) == ("registered_model", "created", None)
    assert parse_mlflow_event(b'{"entity":"prompt","action":"created","data":{"name":"p"}}') is None


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"\xff\xfe",
        b"[]",
        b'"x"',
        b'{"entity":"model_version","action":"created"}',
        b'{"entity":"model_version","action":"created","data":[]}',
        b'{"entity":1,"action":"created","data":{}}',
        b'{"entity":"model_version","action":"created","data":{"version":"1"}}',
        b'{"entity":"model_version","action":"created","data":{"name":"m","version":{"a":1}}}',
    ],
)
def test_malformed_payloads_raise_payload_errors(body: bytes) -> None:
    with pytest.raises(WebhookPayloadError):
        parse_mlflow_event(body)
