"""``benchd check``: did this model version regress against its baseline? For CI/CD after a deploy.

Against a running daemon (``--daemon URL``) it asks for the comparison over the HTTP API and waits; without
one it finds the version in the configured registries and runs the comparison batch here. It prints a table
(metric, baseline, candidate, ratio, interval, verdict), or JSON with ``--json``, and writes JUnit XML with
``--junit FILE``. Exit status: 0 pass (unchanged or improved), 1 regressed, 2 error, 3 inconclusive (0 with
``--inconclusive-passes``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchd.cli.check_report import (
    NO_BASELINE,
    CheckReport,
    format_report,
    junit_xml,
)
from benchd.config import parse_duration_s
from benchd.errors import BenchdError
from benchd.records import COMPLETED_RUN_STATES, SCENARIOS, TERMINAL_RUN_STATES, Verdict, from_dict

_POLL_S = 2.0


def add_parser(sub: Any) -> None:
    """Register ``check`` on the CLI's subparsers."""
    p = sub.add_parser(
        "check",
        help="did a model version regress against its baseline? (for CI/CD)",
        description="Compare a model version with its baseline (the registry's champion alias, else the "
        "previous version) in one batch of interleaved trials, and exit with the verdict. With --daemon it "
        "asks a running benchd over its API and waits; without, it runs the batch on this machine, using "
        "the daemon config's registries, benchmark and verdict settings.",
        epilog="Exit status: 0 pass (every metric unchanged or improved), 1 regressed, 2 error (registry or "
        "daemon unreachable, unknown model or version, the comparison failed), 3 inconclusive (the batch "
        "could not decide within its pairs and time cap, or there is no baseline to compare with, e.g. the "
        "model's first version); --inconclusive-passes (or verdict.inconclusive_passes in the config) turns "
        "3 into 0.",
    )
    p.add_argument("--model", required=True, help="registered model name")
    p.add_argument("--version", required=True, help="the candidate version")
    p.add_argument(
        "--baseline",
        default="champion",
        metavar="champion|VERSION",
        help="compare with this version, or the registry's champion alias (falling back to the previous "
        "version) [default: champion]",
    )
    p.add_argument("--daemon", metavar="URL", help="a running benchd, e.g. http://benchd:9777")
    p.add_argument("--config", metavar="FILE", help="daemon config YAML (local mode) [default: embedded]")
    p.add_argument("--registry", metavar="NAME", help="only look in this configured registry (local mode)")
    p.add_argument(
        "--scenario", action="append", metavar="NAME", help=f"only these scenarios ({', '.join(SCENARIOS)})"
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    p.add_argument(
        "--junit", metavar="FILE", help="also write JUnit XML (a testcase per scenario and metric)"
    )
    p.add_argument(
        "--inconclusive-passes", action="store_true", default=None, help="exit 0 instead of 3 when undecided"
    )
    p.add_argument(
        "--token-env",
        default="BENCHD_API_TOKEN",
        metavar="VAR",
        help="environment variable holding the daemon's API token [default: BENCHD_API_TOKEN]",
    )
    p.add_argument("--timeout", default="30m", help="give up (exit 2) after this long [default: 30m]")
    p.add_argument("--out", metavar="DIR", help="local mode: keep the trials' raw latencies here")
    p.add_argument("--poll-interval", type=float, default=_POLL_S, help=argparse.SUPPRESS)
    p.set_defaults(handler=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    """Run ``benchd check``; return the exit status."""
    report = CheckReport(
        model=args.model, version=str(args.version), mode="daemon" if args.daemon else "local"
    )
    report.inconclusive_passes = bool(args.inconclusive_passes)
    try:
        timeout_s = parse_duration_s(args.timeout, "--timeout")
        if args.daemon:
            check_with_daemon(args, report, time.monotonic() + timeout_s)
        else:
            check_locally(args, report, time.monotonic() + timeout_s)
    except BenchdError as e:
        report.errors.append(str(e))
    if args.scenario:
        wanted = {n.strip() for s in args.scenario for n in s.split(",")}
        report.verdicts = [v for v in report.verdicts if v.scenario in wanted]
    if args.json:
        print(json.dumps(report.to_json(), indent=1))
    else:
        print(format_report(report))
    for sentence in report.errors:
        print(f"benchd check: {sentence}", file=sys.stderr)
    if args.junit:
        Path(args.junit).write_text(junit_xml(report), encoding="utf-8")
    return report.exit_code


# ----------------------------------------------------------------------------------------- local mode


def check_locally(args: argparse.Namespace, report: CheckReport, deadline: float) -> None:
    """Find the version and its baseline in the configured registries and run the batch here.

    Raises:
        BenchdError: the config is invalid, a registry is unreachable, the model or version is unknown.
    """
    from benchd.analysis import choose_baseline
    from benchd.cli.registries import find_version, watchers_of
    from benchd.compare.run import compare, plan_comparison
    from benchd.config import load_daemon_config
    from benchd.devices.context import DeviceContext

    config = load_daemon_config(args.config)
    if args.inconclusive_passes is None:
        report.inconclusive_passes = config.verdict.inconclusive_passes
    candidate, watcher, registry_cfg = find_version(
        watchers_of(config, args.registry), args.model, report.version
    )
    choice = choose_baseline(
        candidate.version,
        watcher.list_versions(args.model),
        champion=watcher.champion(args.model),
        requested=args.baseline,
    )
    if choice.version is None:
        report.notes.append(f"{NO_BASELINE}: {choice.reason} (registry {watcher.name!r})")
        return
    baseline = watcher.find_version(args.model, choice.version)
    report.baseline = baseline.version
    scenarios = _scenarios(config.benchmark.scenarios, args.scenario)
    out_root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="benchd-check-"))
    ctx = DeviceContext(config.devices.mode, config.devices.fake)
    try:
        device = ctx.resolve(config.benchmark.device)
        for settings in scenarios:
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                raise BenchdError(f"gave up: --timeout {args.timeout} passed before scenario {settings.name}")
            plan = plan_comparison(
                config.benchmark,
                config.verdict,
                model=args.model,
                candidate_version=candidate.version,
                candidate_path=candidate.path,
                baseline_version=baseline.version,
                baseline_path=baseline.path,
                scenario=settings,
                device=device,
                allow_pickle=registry_cfg.allow_pickle,
                allow_native_code=registry_cfg.allow_native_code,
            )
            plan = plan.replace(timeout_s=min(plan.timeout_s, remaining_s))
            print(
                f"comparing {args.model} {candidate.version} with {baseline.version} ({settings.name}, "
                f"bs={plan.batch_size}, {device}): {plan.min_pairs}-{plan.max_pairs} pairs of "
                f"{plan.trial_s:g} s trials, at most {plan.time_cap_s:g} s",
                file=sys.stderr,
            )
            outcome = compare(
                plan,
                out_root / f"{settings.name}-bs{plan.batch_size}",
                meter=ctx.sampler,
                host_fingerprint=ctx.fingerprint(device),
            )
            report.benchmark_s += float(outcome.inputs.get("benchmark_s", 0.0))
            if outcome.verdict is None:
                report.errors.append(
                    f"the {settings.name} comparison failed ({outcome.error_kind}): {outcome.error}"
                )
            else:
                report.verdicts.append(outcome.verdict)
    finally:
        ctx.close()
        if not args.out:
            import shutil

            shutil.rmtree(out_root, ignore_errors=True)


def _scenarios(configured: tuple[Any, ...], wanted: list[str] | None) -> list[Any]:
    if not wanted:
        return list(configured)
    names = [n.strip() for s in wanted for n in s.split(",") if n.strip()]
    by_name = {s.name: s for s in configured}
    out = []
    for name in names:
        if name not in SCENARIOS:
            raise BenchdError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
        out.append(by_name.get(name) or dataclasses.replace(configured[0], name=name))
    return out


# ---------------------------------------------------------------------------------------- daemon mode


def check_with_daemon(args: argparse.Namespace, report: CheckReport, deadline: float) -> None:
    """Ask a running daemon for the comparison (``POST /api/v1/runs``) and poll until its run ends.

    Raises:
        BenchdError: the daemon is unreachable, refuses the request or the token, or does not know the
            model or version; the run failed; the deadline passed.
    """
    import requests

    url = args.daemon.rstrip("/")
    token = os.environ.get(args.token_env, "")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    baseline = None if args.baseline == "champion" else args.baseline
    body = {"model": args.model, "version": report.version, "baseline": baseline, "force": True}
    try:
        response = requests.post(f"{url}/api/v1/runs", json=body, headers=headers, timeout=30)
    except requests.RequestException as e:
        raise BenchdError(f"cannot reach the benchd daemon at {url}: {type(e).__name__}: {e}") from e
    if response.status_code != 202:
        reason = _reason(response)
        if response.status_code in (401, 403):
            hint = "" if token else f" ({args.token_env} is not set here)"
            raise BenchdError(f"the daemon at {url} refused the request: {reason}{hint}")
        raise BenchdError(
            f"the daemon at {url} did not queue the run (HTTP {response.status_code}): {reason}"
        )
    doc = response.json()
    run_ids = [int(i) for i in doc.get("run_ids") or [doc["run_id"]]]
    print(f"benchd at {url} queued run {', '.join(map(str, run_ids))}; waiting", file=sys.stderr)
    for run_id in run_ids:
        record = _wait_for_run(url, run_id, headers, deadline, args.poll_interval, args.timeout)
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
    if not report.verdicts:
        report.notes.append(
            f"{NO_BASELINE}: the daemon benchmarked {args.model} {report.version} but decided no verdict"
        )


def _wait_for_run(
    url: str, run_id: int, headers: dict[str, str], deadline: float, poll_s: float, timeout_text: str
) -> dict[str, Any]:
    import requests

    last_state = "queued"
    while True:
        try:
            response = requests.get(f"{url}/api/v1/runs/{run_id}", headers=headers, timeout=30)
        except requests.RequestException as e:
            raise BenchdError(f"lost the benchd daemon at {url} while waiting for run {run_id}: {e}") from e
        if response.status_code != 200:
            raise BenchdError(
                f"the daemon at {url} cannot show run {run_id} "
                f"(HTTP {response.status_code}): {_reason(response)}"
            )
        record = response.json()
        last_state = record.get("state", last_state)
        if last_state in TERMINAL_RUN_STATES and not record.get("verdicts_pending"):
            return record
        if time.monotonic() + poll_s > deadline:
            raise BenchdError(f"gave up after --timeout {timeout_text}: run {run_id} is still {last_state}")
        time.sleep(poll_s)


def _reason(response: Any) -> str:
    try:
        doc = response.json()
    except ValueError:
        return response.text[:300].strip() or response.reason
    if isinstance(doc, dict):
        return str(doc.get("reason") or doc.get("error") or doc)
    return str(doc)


# --------------------------------------------------------------------------------------------- output
