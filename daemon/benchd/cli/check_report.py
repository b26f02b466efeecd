"""What ``benchd check`` found, and how it is shown: a table, JSON, JUnit XML, and the exit status."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from benchd.cli.tables import format_seconds, format_table
from benchd.records import REFUSED, MetricVerdict, Verdict, to_dict

EXIT_PASS, EXIT_REGRESSED, EXIT_ERROR, EXIT_INCONCLUSIVE = 0, 1, 2, 3
NO_BASELINE = "no_baseline"
#: Every value of :attr:`CheckReport.status`, from the worst down.
STATUSES = ("error", "regressed", "inconclusive", NO_BASELINE, "pass")
_UNITS = {"p99_latency": "s", "p50_latency": "s", "throughput": "/s", "energy_per_sample": "J"}


@dataclass
class CheckReport:
    """What ``benchd check`` found: verdicts, or the sentences saying why there are none.

    ``no_baseline`` holds the reason when there is nothing to compare the version with (the model's first
    version): the gate passes with status ``no_baseline`` unless ``require_baseline`` is set.
    """

    model: str
    version: str
    mode: str
    baseline: str | None = None
    verdicts: list[Verdict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    no_baseline: str | None = None
    inconclusive_passes: bool = False
    require_baseline: bool = False
    benchmark_s: float = 0.0
    retries: int = 0

    @property
    def status(self) -> str:
        """One of :data:`STATUSES`; no verdict at all without a no-baseline reason is ``inconclusive``."""
        states = {v.state for v in self.verdicts}
        if self.errors or REFUSED in states:  # a refused verdict: the threshold is below the noise floor
            return "error"
        if "regressed" in states:
            return "regressed"
        if not self.verdicts and self.no_baseline is not None:
            return NO_BASELINE
        if not self.verdicts or states & {"inconclusive", "more"}:
            return "inconclusive"
        return "pass"

    @property
    def exit_code(self) -> int:
        """The process exit status for :attr:`status`."""
        return {
            "error": EXIT_ERROR,
            "regressed": EXIT_REGRESSED,
            "inconclusive": EXIT_PASS if self.inconclusive_passes else EXIT_INCONCLUSIVE,
            NO_BASELINE: EXIT_INCONCLUSIVE if self.require_baseline else EXIT_PASS,
        }.get(self.status, EXIT_PASS)

    def to_json(self) -> dict[str, Any]:
        """The JSON document ``--json`` prints."""
        return {
            "model": self.model,
            "version": self.version,
            "baseline": self.baseline,
            "mode": self.mode,
            "status": self.status,
            "exit_code": self.exit_code,
            "inconclusive_passes": self.inconclusive_passes,
            "require_baseline": self.require_baseline,
            "no_baseline": self.no_baseline,
            "errors": self.errors,
            "notes": self.notes,
            "benchmark_s": self.benchmark_s,
            "retries": self.retries,
            "verdicts": [to_dict(v) for v in self.verdicts],
        }


def format_value(metric: str, value: float) -> str:
    """A metric value for the table: latencies in ms/us, throughput per second, energy in mJ/J."""
    unit = _UNITS.get(metric, "")
    if unit == "s":
        return format_seconds(value)
    if unit == "J":
        return f"{value * 1e3:.3f}mJ" if value < 1 else f"{value:.3f}J"
    return f"{value:,.1f}/s"


def format_report(report: CheckReport) -> str:
    """The table of every verdict's metrics, then the result line and notes."""
    header = ("scenario", "metric", "baseline", "candidate", "ratio", "95% interval", "verdict")
    rows = [header]
    for v in report.verdicts:
        for m in v.metrics:
            rows.append(
                (
                    f"{v.scenario} bs={v.batch_size}",
                    m.metric,
                    format_value(m.metric, m.baseline_value),
                    format_value(m.metric, m.candidate_value),
                    f"{m.ratio:.3f}",
                    f"[{m.ratio_low:.3f}, {m.ratio_high:.3f}]",
                    m.state,
                )
            )
    title = f"{report.model} {report.version} vs {report.baseline or '-'}"
    if report.verdicts:
        title += f" on {report.verdicts[0].device}"
    if report.status == NO_BASELINE:
        rows.append(("all", "-", "-", "-", "-", "-", NO_BASELINE))
    lines = [title]
    if len(rows) > 1:
        lines.append(format_table(header, rows[1:]))
    verdict_states = ", ".join(sorted({v.state for v in report.verdicts})) or "no verdict"
    why = {
        ("inconclusive", 0): " (passes: --inconclusive-passes)",
        (NO_BASELINE, 0): " (passes: nothing to compare with yet; --require-baseline makes it fail)",
        (NO_BASELINE, EXIT_INCONCLUSIVE): " (fails: --require-baseline)",
    }.get((report.status, report.exit_code), "")
    lines.append(f"result: {report.status.upper()} ({verdict_states}){why}, exit {report.exit_code}")
    if report.no_baseline:
        lines.append(f"no baseline: {report.no_baseline}")
    lines += [f"note: {n}" for n in report.notes]
    lines += [f"note ({v.scenario}): {v.note}" for v in report.verdicts if v.note]
    return "\n".join(lines)


def _explain(m: MetricVerdict) -> str:
    bound = f"1 - {m.min_effect:.3f}" if m.higher_is_better else f"1 + {m.min_effect:.3f}"
    return (
        f"{m.metric} {m.state}: ratio {m.ratio:.3f}, 95% interval [{m.ratio_low:.3f}, {m.ratio_high:.3f}] "
        f"(regressed beyond {bound}; unchanged within 1 +/- {m.threshold:.3f}; {m.pairs} pairs)"
    )


def junit_xml(report: CheckReport) -> str:
    """JUnit XML, a testcase per (scenario, metric): regressed fails, inconclusive fails unless it passes."""
    suite = ET.Element("testsuite", name=f"benchd check {report.model} {report.version}")
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}

    def case(classname: str, name: str) -> ET.Element:
        counts["tests"] += 1
        return ET.SubElement(suite, "testcase", classname=classname, name=name, time="0")

    for v in report.verdicts:
        classname = f"benchd.{report.model}.{v.scenario}.bs{v.batch_size}"
        for m in v.metrics:
            tc = case(classname, m.metric)
            text = _explain(m)
            if m.state == "regressed" or (
                m.state in ("inconclusive", "more") and not report.inconclusive_passes
            ):
                counts["failures"] += 1
                ET.SubElement(tc, "failure", type=m.state, message=text).text = v.note
            else:
                ET.SubElement(tc, "system-out").text = text
    for sentence in report.errors:
        counts["errors"] += 1
        ET.SubElement(case(f"benchd.{report.model}", "comparison"), "error", type="error", message=sentence)
    if not report.verdicts and not report.errors:
        tc = case(f"benchd.{report.model}", "baseline")
        if report.status == NO_BASELINE:
            message = f"{NO_BASELINE}: {report.no_baseline}"
            failed = report.require_baseline
            ET.SubElement(tc, "failure" if failed else "skipped", type=NO_BASELINE, message=message)
        else:
            message = "; ".join(report.notes) or "no verdict"
            failed = not report.inconclusive_passes
            if failed:
                ET.SubElement(tc, "failure", type="inconclusive", message=message)
            else:
                ET.SubElement(tc, "system-out").text = message
        counts["failures"] += int(failed)
        counts["skipped"] = int(report.status == NO_BASELINE and not failed)
    for key, value in counts.items():
        suite.set(key, str(value))
    properties = ET.Element("properties")
    ET.SubElement(properties, "property", name="status", value=report.status)
    ET.SubElement(properties, "property", name="exit_code", value=str(report.exit_code))
    suite.insert(0, properties)
    suite.set("time", f"{report.benchmark_s:.1f}")
    root = ET.Element("testsuites", name="benchd check")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
