"""``benchd check``: did this model version regress against its baseline? For CI/CD after a deploy.

Against a running daemon (``--daemon URL``, :mod:`benchd.cli.check_daemon`) it asks for the comparison over
the HTTP API and waits; without one it finds the version in the configured registries and runs the
comparison batch here. It prints a table (metric, baseline, candidate, ratio, interval, verdict), JSON with
``--json [FILE]``, and JUnit XML with ``--junit FILE``. Exit status: 0 pass (unchanged or improved, or
``no_baseline``: nothing to compare with yet), 1 regressed, 2 error, 3 inconclusive (0 with
``--inconclusive-passes``) or no baseline with ``--require-baseline`` (``verdict.require_baseline``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchd.cli.check_daemon import check_with_daemon
from benchd.cli.check_report import CheckReport, format_report, junit_xml
from benchd.cli.output import add_json_option, json_replaces_table, write_json
from benchd.config import parse_duration_s
from benchd.errors import BenchdError
from benchd.records import SCENARIOS

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
        epilog="Exit status: 0 pass (every metric unchanged or improved; or no_baseline: there is no "
        "baseline to compare with yet, e.g. the model's first version), 1 regressed, 2 error (registry or "
        "daemon unreachable past --timeout, unknown model or version, the comparison failed), 3 "
        "inconclusive (the batch could not decide within its pairs and time cap; --inconclusive-passes, or "
        "verdict.inconclusive_passes in the config, turns it into 0), or no baseline with "
        "--require-baseline (or verdict.require_baseline in the config).",
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
    add_json_option(p, "the report")
    p.add_argument(
        "--junit", metavar="FILE", help="also write JUnit XML (a testcase per scenario and metric)"
    )
    p.add_argument(
        "--inconclusive-passes", action="store_true", default=None, help="exit 0 instead of 3 when undecided"
    )
    p.add_argument(
        "--require-baseline",
        action="store_true",
        default=None,
        help="fail (exit 3) when there is no baseline to compare with, instead of passing as no_baseline "
        "[default: verdict.require_baseline of the config, false]",
    )
    p.add_argument(
        "--token-env",
        default="BENCHD_API_TOKEN",
        metavar="VAR",
        help="environment variable holding the daemon's API token [default: BENCHD_API_TOKEN]",
    )
    p.add_argument(
        "--timeout",
        default="30m",
        help="give up (exit 2) after this long; with --daemon, connection errors, timeouts and 5xx answers "
        "are retried with exponential backoff until then [default: 30m]",
    )
    p.add_argument("--out", metavar="DIR", help="local mode: keep the trials' raw latencies here")
    p.add_argument("--poll-interval", type=float, default=_POLL_S, help=argparse.SUPPRESS)
    p.add_argument("--retry-initial-s", type=float, default=0.5, help=argparse.SUPPRESS)  # first backoff
    p.set_defaults(handler=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    """Run ``benchd check``; return the exit status."""
    report = CheckReport(
        model=args.model, version=str(args.version), mode="daemon" if args.daemon else "local"
    )
    report.inconclusive_passes = bool(args.inconclusive_passes)
    report.require_baseline = bool(args.require_baseline)
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
    for target, write in (
        (args.json, lambda t: write_json(report.to_json(), t)),
        (args.junit, lambda t: Path(t).write_text(junit_xml(report), encoding="utf-8")),
    ):
        if target:
            try:
                write(target)
            except (BenchdError, OSError) as e:  # the report still prints; the gate says it broke
                report.errors.append(str(e) if isinstance(e, BenchdError) else f"cannot write {target}: {e}")
    if not json_replaces_table(args.json):
        print(format_report(report))
    for sentence in report.errors:
        print(f"benchd check: {sentence}", file=sys.stderr)
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
    from benchd.runner.cpus import others, pin_process
    from benchd.runner.sandbox import WorkerLimits

    config = load_daemon_config(args.config)
    if args.inconclusive_passes is None:
        report.inconclusive_passes = config.verdict.inconclusive_passes
    if args.require_baseline is None:
        report.require_baseline = config.verdict.require_baseline
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
        report.no_baseline = f"{choice.reason} (registry {watcher.name!r})"
        return
    baseline = watcher.find_version(args.model, choice.version)
    report.baseline = baseline.version
    scenarios = _scenarios(config.benchmark.scenarios, args.scenario)
    out_root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="benchd-check-"))
    ctx = DeviceContext.for_config(config)
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
            pin_process(others(plan.candidate.cpus))  # this process's threads off the worker's CPUs
            print(
                f"comparing {args.model} {candidate.version} with {baseline.version} ({settings.name}, "
                f"bs={plan.batch_size}, {device}): {plan.min_pairs}-{plan.max_pairs} pairs, "
                f"{plan.pairs_per_unit} per worker process, trials of at least {plan.trial_queries} queries "
                f"and {plan.trial_s:g} s, at most {plan.time_cap_s:g} s",
                file=sys.stderr,
            )
            outcome = compare(
                plan,
                out_root / f"{settings.name}-bs{plan.batch_size}",
                meter=ctx.sampler,
                host_fingerprint=ctx.fingerprint(device),
                limits=WorkerLimits.from_config(config.workers),
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
