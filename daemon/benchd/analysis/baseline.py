"""Which version a candidate is compared against: one rule for the daemon and ``benchd check`` alike.

The baseline is the version the registry's champion alias names, else the newest version older than the
candidate in the registry's version order (:func:`~benchd.records.version_sort_key`: MLflow's version
numbers, local folder names sorted naturally). A caller may also name a version explicitly. Where stored runs
exist (the daemon), a version serves only if it has an eligible run: same scenario, batch size, device and
hardware class (hardware/driver fingerprint) as the candidate's comparison, valid, and not throttled. A
throttled or INVALID run measured a different machine state, so it never serves as a baseline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from benchd.records import version_sort_key

#: Names a request may use instead of a version: the registry's champion alias.
ALIASES = ("champion",)

#: Why a version cannot serve as the baseline (completing "the baseline ..."), or None when it can.
WhyNot = Callable[[str], str | None]


@dataclass(frozen=True)
class BaselineCandidate:
    """A finished run that might make its version a baseline.

    Attributes:
        version: the model version the run measured.
        scenario: the scenario name.
        batch_size: the batch size.
        device: the device the run used (``cuda:0``, ``cpu``).
        hardware_class: the hardware/driver fingerprint class.
        valid: False when the run was INVALID (scenario constraints unmet).
        throttled: True when the device throttled during the measured window.
    """

    version: str
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


def eligible_runs(
    runs: Iterable[BaselineCandidate], *, scenario: str, batch_size: int, device: str, hardware_class: str
) -> WhyNot:
    """A :data:`WhyNot` from stored runs: a version serves when one of its runs is eligible."""
    by_version: dict[str, list[BaselineCandidate]] = {}
    for run in runs:
        by_version.setdefault(run.version, []).append(run)

    def why_not(version: str) -> str | None:
        version_runs = by_version.get(version, [])
        if not version_runs:
            return "has no finished run"
        reasons = list(
            dict.fromkeys(
                ineligible_reason(
                    r, scenario=scenario, batch_size=batch_size, device=device, hardware_class=hardware_class
                )
                or "eligible"
                for r in version_runs
            )
        )
        if "eligible" in reasons:
            return None
        if len(version_runs) == 1:
            return f"'s only run was {reasons[0]}"
        return f"'s {len(version_runs)} runs were: {', '.join(reasons)}"

    return why_not


def _joined(version: str, why: str) -> str:
    return f"{version}{why}" if why.startswith("'") else f"{version} {why}"


def choose_baseline(
    candidate_version: str,
    versions: Sequence[str],
    *,
    champion: str | None,
    requested: str | None = None,
    why_not: WhyNot | None = None,
) -> BaselineChoice:
    """Choose the baseline of ``candidate_version`` among the model's ``versions`` (any order).

    Args:
        candidate_version: the version being judged.
        versions: the model's versions the caller knows (the registry's, or the store's).
        champion: the version the registry's champion alias names, or None.
        requested: an explicit version (used as is, unless it is the candidate), or an alias from
            :data:`ALIASES` or None for the rule.
        why_not: says why a version cannot serve (None: every version can).

    Returns:
        The champion when it is not the candidate and can serve; else the newest version older than the
        candidate in version order that can serve; else no baseline, with the reasons.
    """
    if requested is not None and requested not in ALIASES:
        if requested == candidate_version:
            return BaselineChoice(None, f"the requested baseline {requested} is the candidate itself")
        return BaselineChoice(requested, f"requested baseline ({requested})")
    why_not = why_not or (lambda version: None)
    champion_note = ""
    if champion is not None:
        if champion == candidate_version:
            champion_note = "the champion alias names the candidate itself"
        elif (why := why_not(champion)) is None:
            return BaselineChoice(champion, f"champion alias ({champion})")
        else:
            champion_note = f"champion {_joined(champion, why)}"
    key = version_sort_key(candidate_version)
    older = sorted({v for v in versions if version_sort_key(v) < key}, key=version_sort_key, reverse=True)
    details: list[str] = []
    for version in older:
        why = why_not(version)
        if why is None:
            suffix = f" ({champion_note})" if champion_note else ""
            return BaselineChoice(version, f"previous version ({version}){suffix}")
        if len(details) < 3:
            details.append(_joined(version, why))
    if not older:
        details.append("no older version")
    elif len(older) > 3:
        details.append(f"{len(older) - 3} older versions not eligible either")
    if champion_note:
        details.insert(0, champion_note)
    return BaselineChoice(None, "no eligible baseline: " + "; ".join(details))
