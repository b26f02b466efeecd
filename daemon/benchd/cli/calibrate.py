"""``benchd calibrate``: how small a P99 change can a batch on this host decide within its budget?"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchd.errors import BenchdError

EXIT_OK, EXIT_ERROR, EXIT_BELOW_FLOOR = 0, 2, 3


def add_parser(sub: Any) -> None:
    """Register ``calibrate`` on the CLI's subparsers."""
    p = sub.add_parser(
        "calibrate",
        help="measure this host's noise floor for a model: the smallest P99 change a batch can decide",
        description="Run A/A batches (the version against itself) with the config's benchmark and verdict "
        "settings, each to its full budget (verdict.time_cap / max_pairs), and report the half-width of the "
        "final 95%% interval of P99 and p50: the noise floor. A P99 threshold below the floor can never call "
        "an unchanged version unchanged, and the smallest P99 regression a batch can call is about "
        "min_effect + floor. The floor is stored in the config's history store, where the daemon exports it "
        "(benchd_verdict_noise_floor_ratio) and refuses thresholds below it.",
        epilog="Exit status: 0 measured, and the configured P99 threshold is above the floor; 3 measured, "
        "and the threshold is below it (verdicts would end inconclusive: raise the threshold or the time "
        "cap); 2 error.",
    )
    p.add_argument("--model", required=True, help="registered model name")
    p.add_argument("--version", required=True, help="the version to compare with itself")
    p.add_argument("--config", metavar="FILE", help="daemon config YAML [default: embedded]")
    p.add_argument("--registry", metavar="NAME", help="only look in this configured registry")
    p.add_argument("--scenario", metavar="NAME", help="scenario to calibrate [default: the config's first]")
    p.add_argument(
        "--batches", type=int, default=3, help="A/A batches; the floor is their median [default: 3]"
    )
    p.add_argument("--no-store", action="store_true", help="do not store the floor in the history store")
    p.add_argument("--json", action="store_true", help="print the floor as JSON")
    p.add_argument("--out", metavar="DIR", help="keep the batches' trials here [default: a temp folder]")
    p.set_defaults(handler=cmd_calibrate)


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Run ``benchd calibrate``; return the exit status."""
    try:
        floor, threshold = _calibrate(args)
    except BenchdError as e:
        print(f"benchd calibrate: {e}", file=sys.stderr)
        return EXIT_ERROR
    refusal = floor.refusal(threshold)
    if args.json:
        from benchd.records import to_dict

        print(json.dumps({**to_dict(floor), "p99_threshold": threshold, "refused": refusal}, indent=1))
    else:
        print(describe_floor(floor, threshold))
    return EXIT_BELOW_FLOOR if refusal else EXIT_OK


def describe_floor(floor: Any, threshold: float) -> str:
    """The floor in sentences: its value, each batch's width, and what it means for the threshold."""
    widths = ", ".join(f"{w:.1%}" for w in floor.widths)
    lines = [
        f"noise floor of {floor.model} {floor.version} ({floor.scenario} bs={floor.batch_size}, "
        f"{floor.device}, hardware class {floor.hardware_class or 'unknown'}):",
        f"  P99 +/-{floor.p99_ratio:.1%} (median of {floor.batches} A/A batches of {floor.budget_s:g} s, "
        f"about {floor.pairs} pairs each: {widths}); p50 +/-{floor.p50_ratio:.1%}",
    ]
    refusal = floor.refusal(threshold)
    if refusal:
        lines.append(f"  refused: {refusal}")
    else:
        lines.append(
            f"  the P99 threshold {threshold:.0%} is above the floor: an unchanged version can be called "
            f"unchanged, and a P99 regression of about {threshold / 2 + floor.p99_ratio:.0%} or more can be "
            "called regressed within the budget"
        )
    return "\n".join(lines)


def _calibrate(args: argparse.Namespace) -> tuple[Any, float]:
    import dataclasses

    from benchd.cli.registries import find_version, watchers_of
    from benchd.compare.calibrate import calibrate
    from benchd.compare.run import plan_comparison
    from benchd.config import load_daemon_config
    from benchd.devices.context import DeviceContext
    from benchd.runner.cpus import others, pin_process
    from benchd.runner.sandbox import WorkerLimits

    if args.batches < 1:
        raise BenchdError(f"--batches must be at least 1, got {args.batches}")
    config = load_daemon_config(args.config)
    version, _, registry_cfg = find_version(watchers_of(config, args.registry), args.model, args.version)
    settings = config.benchmark.scenarios[0]
    if args.scenario:
        by_name = {s.name: s for s in config.benchmark.scenarios}
        settings = by_name.get(args.scenario) or dataclasses.replace(settings, name=args.scenario)
    out_root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="benchd-calibrate-"))
    ctx = DeviceContext.for_config(config)
    try:
        device = ctx.resolve(config.benchmark.device)
        plan = plan_comparison(
            config.benchmark,
            config.verdict,
            model=args.model,
            candidate_version=version.version,
            candidate_path=version.path,
            baseline_version=version.version,
            baseline_path=version.path,
            scenario=settings,
            device=device,
            allow_pickle=registry_cfg.allow_pickle,
            allow_native_code=registry_cfg.allow_native_code,
        )
        pin_process(others(plan.candidate.cpus))  # this process's threads off the worker's CPUs
        print(
            f"calibrating {args.model} {version.version} ({settings.name}, {device}): {args.batches} A/A "
            f"batches of up to {plan.time_cap_s:g} s / {plan.max_pairs} pairs",
            file=sys.stderr,
        )
        fingerprint = ctx.fingerprint(device)
        floor = calibrate(
            plan,
            out_root,
            batches=args.batches,
            hardware_class=str(fingerprint.get("hardware_class") or ""),
            meter=ctx.sampler,
            host_fingerprint=fingerprint,
            limits=WorkerLimits.from_config(config.workers),
            on_batch=lambda i, w: print(
                f"  A/A batch {i + 1}: P99 +/-{w['p99']:.1%}, p50 +/-{w['p50']:.1%} ({w['pairs']:.0f} pairs)",
                file=sys.stderr,
            ),
        )
    finally:
        ctx.close()
        if not args.out:
            import shutil

            shutil.rmtree(out_root, ignore_errors=True)
    if not args.no_store:
        from benchd.history import open_store

        with open_store(config.store.url) as store:
            store.save_noise_floor(floor)
    return floor, plan.thresholds.get("p99_latency", plan.threshold)
