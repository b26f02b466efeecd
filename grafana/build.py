"""Build benchd's Grafana dashboards and Grafana-managed alerts from code.

    python grafana/build.py           # (re)write grafana/dashboards/*.json and grafana/alerting/
    python grafana/build.py --check   # exit 1 when the committed files differ from what the code builds

Needs grafana-foundation-sdk==1769699379!11.6.0 (the ``grafana`` extra).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchd_dashboards import alerting, daemon, model, overview
from benchd_dashboards.common import to_json

GRAFANA_DIR = Path(__file__).resolve().parent
REPO = GRAFANA_DIR.parent
RULES = REPO / "deploy" / "prometheus" / "benchd-rules.yml"


def outputs() -> dict[Path, str]:
    """Every generated file and its content."""
    files = {
        GRAFANA_DIR / "dashboards" / f"{name}.json": to_json(module.build())
        for name, module in (("overview", overview), ("model", model), ("daemon", daemon))
    }
    alerts = alerting.to_yaml(alerting.build_provisioning(RULES))
    files[GRAFANA_DIR / "alerting" / "benchd-alerts.yml"] = alerts
    return files


def main(argv: list[str] | None = None) -> int:
    """Write or check the generated files; returns the exit status."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    stale = []
    for path, content in outputs().items():
        current = path.read_text() if path.exists() else None
        if current == content:
            continue
        if args.check:
            stale.append(path.relative_to(REPO))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
            sys.stdout.write(f"wrote {path.relative_to(REPO)}\n")
    for path in stale:
        sys.stderr.write(f"out of date: {path} (run python grafana/build.py)\n")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
