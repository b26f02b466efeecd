"""``benchd check --daemon URL``: ask a running daemon for the comparison and wait for its verdicts.

The daemon is asked over its API (``POST /api/v1/runs``, then ``GET /api/v1/runs/{id}`` until the run and
its verdicts are done). A deploy gate must not fail on a blip: connection errors, timeouts and 5xx answers
are retried with exponential backoff until ``--timeout``, each retry said on stderr. A 4xx answer (bad
token, unknown version) is final at once.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchd.cli.check_report import CheckReport
from benchd.errors import BenchdError
from benchd.records import COMPLETED_RUN_STATES, TERMINAL_RUN_STATES, Verdict, from_dict

#: The longest single HTTP request and the longest wait between two retries, in seconds.
REQUEST_TIMEOUT_S = 30.0
MAX_BACKOFF_S = 30.0


@dataclass
class Retrying:
    """Sends requests to the daemon, retrying transient failures until ``deadline`` (monotonic s).

    Args:
        url: the daemon's base URL.
        deadline: ``time.monotonic()`` value after which no retry starts.
        timeout_text: ``--timeout`` as the user wrote it (for the sentences).
        initial_backoff_s: the first wait; each further wait doubles, up to :data:`MAX_BACKOFF_S`.
        say: where retry notices go (one line each).
    """

    url: str
    deadline: float
    timeout_text: str
    initial_backoff_s: float = 0.5
    say: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)
    retries: int = 0

    def request(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        """Send one request; return the response of the first non-transient answer.

        Raises:
            BenchdError: the deadline passed while the failures were still transient (the sentence holds
                the last one).
        """
        import requests

        backoff_s = self.initial_backoff_s
        attempt = 0
        while True:
            attempt += 1
            remaining_s = self.deadline - time.monotonic()
            try:
                response = requests.request(
                    method, self.url + path, timeout=max(0.1, min(REQUEST_TIMEOUT_S, remaining_s)), **kwargs
                )
            except requests.RequestException as e:
                problem = f"{type(e).__name__}: {e}"
            else:
                if response.status_code < 500:
                    return response
                problem = f"HTTP {response.status_code}: {reason(response)}"
            wait_s = min(backoff_s, MAX_BACKOFF_S)
            if time.monotonic() + wait_s > self.deadline:
                raise BenchdError(
                    f"gave up after --timeout {self.timeout_text}: {what} failed {attempt} time(s), "
                    f"last: {problem}"
                )
            self.retries += 1
            self.say(
                f"benchd check: {what} failed ({problem}); retrying in {wait_s:.3g} s (attempt {attempt})"
            )
            time.sleep(wait_s)
            backoff_s *= 2


def reason(response: Any) -> str:
    """The daemon's one-line reason from an error response (its JSON ``reason``, else the text)."""
    try:
        doc = response.json()
    except ValueError:
        return response.text[:300].strip() or str(response.reason)
    if isinstance(doc, dict):
        return str(doc.get("reason") or doc.get("error") or doc)
    return str(doc)


def check_with_daemon(args: Any, report: CheckReport, deadline: float) -> None:
    """Ask a running daemon for the comparison (``POST /api/v1/runs``) and poll until its run ends.

    Raises:
        BenchdError: the daemon refuses the request or the token, or does not know the model or version;
            the run failed; the deadline passed (transient failures are retried until then).
    """
    url = args.daemon.rstrip("/")
    client = Retrying(url, deadline, args.timeout, initial_backoff_s=args.retry_initial_s)
    token = os.environ.get(args.token_env, "")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    baseline = None if args.baseline == "champion" else args.baseline
    body = {"model": args.model, "version": report.version, "baseline": baseline, "force": True}
    response = client.request(
        "POST", "/api/v1/runs", f"asking the daemon at {url}", json=body, headers=headers
    )
    if response.status_code != 202:
        why = reason(response)
        if response.status_code in (401, 403):
            hint = "" if token else f" ({args.token_env} is not set here)"
            raise BenchdError(f"the daemon at {url} refused the request: {why}{hint}")
        raise BenchdError(f"the daemon at {url} did not queue the run (HTTP {response.status_code}): {why}")
    doc = response.json()
    run_ids = [int(i) for i in doc.get("run_ids") or [doc["run_id"]]]
    print(f"benchd at {url} queued run {', '.join(map(str, run_ids))}; waiting", file=sys.stderr)
    for run_id in run_ids:
        record = _wait_for_run(client, run_id, headers, args.poll_interval)
        state = record.get("state")
        if state not in COMPLETED_RUN_STATES:
            kind = record.get("error_kind") or state
            raise BenchdError(
                f"run {run_id} of {args.model} {report.version} ended {state} ({kind}): {record.get('error')}"
            )
        verdicts = [from_dict(Verdict, v) for v in record.get("verdicts") or []]
        report.verdicts.extend(verdicts)
        for v in verdicts:
            report.baseline = report.baseline or v.baseline_version
    report.retries = client.retries
    if not report.verdicts:
        _explain_no_verdict(client, args.model, report, headers)


def _wait_for_run(client: Retrying, run_id: int, headers: dict[str, str], poll_s: float) -> dict[str, Any]:
    last_state = "queued"
    while True:
        response = client.request(
            "GET", f"/api/v1/runs/{run_id}", f"reading run {run_id} from the daemon", headers=headers
        )
        if response.status_code != 200:
            raise BenchdError(
                f"the daemon at {client.url} cannot show run {run_id} "
                f"(HTTP {response.status_code}): {reason(response)}"
            )
        record = response.json()
        last_state = record.get("state", last_state)
        if last_state in TERMINAL_RUN_STATES and not record.get("verdicts_pending"):
            return record
        if time.monotonic() + poll_s > client.deadline:
            raise BenchdError(
                f"gave up after --timeout {client.timeout_text}: run {run_id} is still {last_state}"
            )
        time.sleep(poll_s)


def _explain_no_verdict(client: Retrying, model: str, report: CheckReport, headers: dict[str, str]) -> None:
    """No verdict came back: ``no_baseline`` when the daemon has no other version's run, else undecided."""
    response = client.request(
        "GET",
        "/api/v1/runs",
        "listing the model's runs",
        params={"model": model, "limit": 1000},
        headers=headers,
    )
    runs = response.json().get("runs", []) if response.status_code == 200 else None
    others = (
        None
        if runs is None
        else sorted(
            {
                r["version"]
                for r in runs
                if r["version"] != report.version and r["state"] in COMPLETED_RUN_STATES
            }
        )
    )
    if others == []:
        report.no_baseline = f"the daemon has no completed run of another version of {model} to compare with"
    else:
        which = f"versions {', '.join(others)} have runs" if others else "other versions may have runs"
        report.notes.append(
            f"the daemon benchmarked {model} {report.version} but decided no verdict although {which}; "
            "see the daemon's log (verdict.mode off, or the comparison failed)"
        )
