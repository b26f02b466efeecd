"""Which version a candidate is compared against.

The baseline is the version the registry's champion alias names, else the newest version older than the
candidate, in both cases only if it has an eligible run: same scenario, batch size, device and hardware class
(hardware/driver fingerprint) as the candidate's comparison, valid, and not throttled. A throttled or INVALID
run measured a different machine state, so it never serves as a baseline. The caller passes only runs of the
candidate's model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class BaselineCandidate:
    """A finished run that might serve as a baseline.

    Attributes:
        version: the model version the run measured.
        created_order: when the version was created in the registry (a sequence number or unix seconds);
            larger is newer. Only its ordering matters.
        scenario: the scenario name.
        batch_size: the batch size.
        device: the device the run used (``cuda:0``, ``cpu``).
        hardware_class: the hardware/driver fingerprint class.
        valid: False when the run was INVALID (scenario constraints unmet).
        throttled: True when the device throttled during the measured window.
    """

    version: str
    created_order: float
    scenario: str
    batch_size: int
    device: str
    hardware_class: str
    valid: bool = True
    throttled: bool = False


@dataclass(frozen=True)
class BaselineChoice:
    """The chosen baseline version (None when there is none) and why, in words for logs and the API."""

    version: str | None
    reason: str

    @property
    def found(self) -> bool:
        """True when a baseline was chosen."""
        return self.version is not None


def ineligible_reason(
    run: BaselineCandidate, *, scenario: str, batch_size: int, device: str, hardware_class: str
) -> str | None:
    """Why ``run`` cannot serve as a baseline for this comparison (completes "the run was ..."), or None."""
    if run.scenario != scenario:
        return f"for scenario {run.scenario!r}, not {scenario!r}"
    if run.batch_size != batch_size:
        return f"at batch size {run.batch_size}, not {batch_size}"
    if run.device != device:
        return f"on device {run.device!r}, not {device!r}"
    if run.hardware_class != hardware_class:
        return f"on hardware class {run.hardware_class!r}, not {hardware_class!r}"
    if not run.valid:
        return "INVALID"
    if run.throttled:
        return "throttled"
    return None


def choose_baseline(
    candidate_version: str,
    runs: Sequence[BaselineCandidate],
    *,
    champion: str | None,
    scenario: str,
    batch_size: int,
    device: str,
    hardware_class: str,
    candidate_order: float | None = None,
) -> BaselineChoice:
    """Choose the baseline of ``candidate_version`` among the model's finished ``runs``.

    The champion when it is not the candidate and has an eligible run; else the newest version older than
    the candidate with an eligible run; else None. The candidate's age is ``candidate_order``, else the
    ``created_order`` of its own runs, else it counts as the newest version.
    """
    match = {
        "scenario": scenario,
        "batch_size": batch_size,
        "device": device,
        "hardware_class": hardware_class,
    }
    by_version: dict[str, list[BaselineCandidate]] = {}
    for run in runs:
        by_version.setdefault(run.version, []).append(run)

    def eligible(version: str) -> bool:
        return any(ineligible_reason(r, **match) is None for r in by_version.get(version, []))

    def why_not(version: str) -> str:
        version_runs = by_version.get(version, [])
        if not version_runs:
            return f"{version} has no finished run"
        reasons = list(dict.fromkeys(ineligible_reason(r, **match) or "eligible" for r in version_runs))
        if len(version_runs) == 1:
            return f"{version}'s only run was {reasons[0]}"
        return f"{version}'s {len(version_runs)} runs were: {', '.join(reasons)}"

    champion_note = ""
    if champion is not None:
        if champion == candidate_version:
            champion_note = "the champion alias names the candidate itself"
        elif eligible(champion):
            return BaselineChoice(champion, f"champion alias ({champion})")
        else:
            champion_note = f"champion {why_not(champion)}"

    if candidate_order is None:
        own = [r.created_order for r in by_version.get(candidate_version, [])]
        candidate_order = min(own) if own else math.inf
    older = sorted(
        (
            (max(r.created_order for r in version_runs), version)
            for version, version_runs in by_version.items()
            if version != candidate_version
        ),
        reverse=True,
    )
    older = [(order, version) for order, version in older if order < candidate_order]
    for _, version in older:
        if eligible(version):
            suffix = f" ({champion_note})" if champion_note else ""
            return BaselineChoice(version, f"previous version ({version}){suffix}")
    details = [why_not(version) for _, version in older[:3]] or ["no older version"]
    if len(older) > 3:
        details.append(f"{len(older) - 3} older versions not eligible either")
    if champion_note:
        details.insert(0, champion_note)
    return BaselineChoice(None, "no eligible baseline: " + "; ".join(details))
