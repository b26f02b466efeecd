"""The HTTP API's routes through the real HTTPService on 127.0.0.1 (harness: api_support.py).

Health, readiness, the runs list and its filters (model, state, limit), one run, POST runs with its token,
and bad requests: non-JSON, wrong types, huge numbers, unknown models, bad tokens, oversized bodies.
"""

from __future__ import annotations

import http.client
import json
from typing import Any

import pytest

from benchd.history import SQLiteHistoryStore
from benchd.service.scheduler import PRIORITY_API
from tests.history.conftest import _run_result, _spec
from tests.service.api_support import HOOK, TOKEN, TOKEN_ENV, Served


def test_health_is_always_ok_and_readiness_waits_for_every_registry(served: Served) -> None:
    status, body = served.get("/healthz")
    assert status == 200 and body["status"] == "ok" and body["uptime_s"] >= 0
    assert served.get("/readyz") == (503, {"status": "starting", "reason": "registries not polled yet"})
    served.scheduler.jobs["local"]()
    assert served.get("/readyz")[0] == 503  # one registry is not enough
    served.scheduler.jobs["ml"]()
    assert served.get("/readyz") == (200, {"status": "ready"})


def _finished_run(store: SQLiteHistoryStore, model: str, version: str) -> int:
    spec = _spec(model=model, version=version)
    run_id = store.enqueue_run(spec)
    assert store.claim_next_run("cpu").id == run_id
    store.finish_run(run_id, _run_result(spec))
    return run_id


def test_list_runs_filters_by_model_state_and_limit(served: Served) -> None:
    store = served.store
    a1 = _finished_run(store, "a", "1")
    b1 = store.enqueue_run(_spec(model="b", version="1"))
    a2 = store.enqueue_run(_spec(model="a", version="2"))

    def ids(query: str) -> list[int]:
        status, body = served.get("/api/v1/runs" + query)
        assert status == 200, body
        return [r["id"] for r in body["runs"]]

    assert ids("") == [a2, b1, a1]  # newest first
    assert ids("?model=a") == [a2, a1]
    assert ids("?state=queued") == [a2, b1]
    assert ids("?state=ok") == [a1]
    assert ids("?model=a&state=ok") == [a1]
    assert ids("?model=nobody") == []
    assert ids("?limit=2") == [a2, b1]
    assert ids("?limit=0") == [a2] and ids("?limit=-5") == [a2]  # at least one
    assert ids("?limit=99999999999999999999999999") == [a2, b1, a1]  # capped, not an overflow
    assert ids("?model=&state=") == [a2, b1, a1]  # empty filters filter nothing
    body = served.get("/api/v1/runs?model=a&state=ok")[1]["runs"][0]
    assert (body["model"], body["version"], body["state"], body["result"]["outcome"]) == (
        "a",
        "1",
        "ok",
        "ok",
    )
    status, error = served.get("/api/v1/runs?limit=ten")
    assert status == 400 and error == {"error": "bad_request", "reason": "limit must be an integer"}


def test_one_run_with_its_verdicts_and_whether_one_is_pending(served: Served) -> None:
    run_id = _finished_run(served.store, "a", "1")
    status, body = served.get(f"/api/v1/runs/{run_id}")
    assert status == 200
    assert (body["id"], body["state"], body["verdicts"], body["verdicts_pending"]) == (
        run_id,
        "ok",
        [],
        False,
    )
    served.busy.add(run_id)  # the slot still decides its verdict
    assert served.get(f"/api/v1/runs/{run_id}/")[1]["verdicts_pending"] is True
    queued = served.store.enqueue_run(_spec(model="a", version="2"))
    served.busy.add(queued)
    assert served.get(f"/api/v1/runs/{queued}")[1]["verdicts_pending"] is False  # nothing ended yet
    assert served.get("/api/v1/runs/999") == (404, {"error": "not_found", "reason": "no run 999"})
    status, error = served.get("/api/v1/runs/latest")
    assert status == 404 and "run ids are integers" in error["reason"]


def test_a_huge_run_id_is_not_found_rather_than_a_server_error(served: Served) -> None:
    assert served.get("/api/v1/runs/" + "9" * 30)[0] == 404


def test_post_run_needs_the_token(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    served.registry.publish("mlp", "1")
    body = {"model": "mlp", "version": "1"}
    status, error, headers = served.request("POST", "/api/v1/runs", json.dumps(body).encode())
    assert (status, error["error"], headers["WWW-Authenticate"]) == (
        401,
        "unauthorized",
        'Bearer realm="benchd"',
    )
    assert served.post_run(body, token="wrong")[0] == 401
    assert served.post_run(body, token=TOKEN + "x")[0] == 401
    assert served.post_run(body, token="")[0] == 401
    status, _, _ = served.request("POST", "/api/v1/runs", json.dumps(body).encode(), {"Authorization": TOKEN})
    assert status == 401  # the scheme is required
    assert served.store.list_runs() == []
    monkeypatch.delenv(TOKEN_ENV)
    status, error = served.post_run(body)
    assert status == 403 and error["error"] == "api_disabled" and TOKEN_ENV in error["reason"]


def test_post_run_re_runs_a_known_version_and_answers_the_same_run_while_queued(served: Served) -> None:
    served.registry.publish("mlp", "1")
    served.scheduler.jobs["local"]()
    (polled,) = served.store.list_runs()
    assert served.store.claim_next_run("cpu").id == polled.id
    served.store.fail_run(polled.id, "internal", "ended for the test")
    status, body = served.post_run({"model": "mlp", "version": 1, "baseline": "champion"})
    assert status == 202 and body["run_ids"] == [body["run_id"]] and body["run_id"] != polled.id
    run = served.store.get_run(body["run_id"])
    assert (run.model, run.version, run.state, run.priority) == ("mlp", "1", "queued", PRIORITY_API)
    assert (run.reason, run.spec.baseline) == ("requested over the API", "champion")
    assert served.post_run({"model": "mlp", "version": "1"}) == (202, body)  # still queued: the same run
    assert len(served.store.list_runs()) == 2


def test_post_run_of_a_version_not_polled_yet_polls_the_registries(served: Served) -> None:
    served.registry.publish("mlp", "1")
    status, body = served.post_run({"model": "mlp", "version": "1"})
    assert status == 202
    (run,) = served.store.list_runs()
    assert (run.id, run.model, run.version, run.state) == (body["run_id"], "mlp", "1", "queued")


@pytest.mark.parametrize(
    ("raw", "error", "reason"),
    [
        (b"{not json", "invalid_json", "not valid JSON"),
        (b"\xff\xfe", "invalid_json", "not valid JSON"),
        (b"", "invalid_json", "not valid JSON"),
        (b'["mlp", "1"]', "bad_request", "expected a JSON object"),
        (b'{"version": "1"}', "bad_request", "'model' and 'version' are required"),
        (b'{"model": "mlp"}', "bad_request", "'model' and 'version' are required"),
        (b'{"model": "", "version": "1"}', "bad_request", "'model' and 'version' are required"),
        (b'{"model": ["mlp"], "version": "1"}', "bad_request", "'model' and 'version' are required"),
        (b'{"model": "mlp", "version": 1.5}', "bad_request", "'model' and 'version' are required"),
        (b'{"model": "mlp", "version": {"v": 1}}', "bad_request", "'model' and 'version' are required"),
        (b'{"model": "mlp", "version": 1e400}', "bad_request", "'model' and 'version' are required"),
        (b'{"model": "mlp", "version": "1", "baseline": [1]}', "bad_request", "'baseline' must be"),
    ],
)
def test_post_run_refuses_malformed_bodies(served: Served, raw: bytes, error: str, reason: str) -> None:
    served.registry.publish("mlp", "1")
    status, answer = served.post_run(None, raw=raw)
    assert (status, answer["error"]) == (400, error)
    assert reason in answer["reason"]
    assert served.store.list_runs() == []


def test_post_run_of_an_unknown_model_or_version_is_404_naming_it(served: Served) -> None:
    served.registry.publish("mlp", "1")
    status, error = served.post_run({"model": "nope", "version": "1"})
    assert status == 404 and error == {
        "error": "unknown_version",
        "reason": "no registry knows model 'nope' version '1'",
    }
    huge = 10**60  # a JSON integer far past 64 bits is a version name like any other
    status, error = served.post_run({"model": "mlp", "version": huge})
    assert status == 404 and str(huge) in error["reason"]
    # the look-up polled the registries: what they hold was queued, nothing of the unknown versions
    assert [(r.model, r.version) for r in served.store.list_runs()] == [("mlp", "1")]


@pytest.mark.parametrize("body", [{"force": "false"}, {"force": 0}, {"version": True}])
def test_post_run_refuses_wrong_types_it_would_otherwise_coerce(served: Served, body: dict[str, Any]) -> None:
    served.registry.publish("mlp", "1")
    status, _ = served.post_run({"model": "mlp", "version": "1", **body})
    assert status == 400


def test_a_body_over_the_limit_is_refused_unread(served: Served) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    try:
        conn.putrequest("POST", "/api/v1/runs")
        conn.putheader("Authorization", f"Bearer {TOKEN}")
        conn.putheader("Content-Length", str(10**12))  # nothing follows: the server must not wait for it
        conn.endheaders()
        response = conn.getresponse()
        assert response.status == 413
        assert "exceeds the limit of 4096 bytes" in json.loads(response.read())["reason"]
    finally:
        conn.close()


def test_unknown_routes_and_methods(served: Served) -> None:
    assert served.get("/api/v2/runs")[0] == 404
    status, error, headers = served.request("DELETE", "/api/v1/runs")
    assert (status, error["error"], headers["Allow"]) == (405, "method_not_allowed", "GET, POST")
    assert served.request("GET", HOOK)[0] == 405


def test_a_requested_baseline_is_kept_for_a_version_not_polled_yet(served: Served) -> None:
    served.registry.publish("mlp", "1")
    status, body = served.post_run({"model": "mlp", "version": "1", "baseline": "0"})
    assert status == 202
    run = served.store.get_run(body["run_id"])
    assert (run.spec.baseline, run.priority) == ("0", PRIORITY_API)
