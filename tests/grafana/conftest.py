"""Make grafana/benchd_dashboards importable (it is built by grafana/build.py, not installed)."""

from __future__ import annotations

import sys
from pathlib import Path

GRAFANA_DIR = Path(__file__).resolve().parents[2] / "grafana"
if str(GRAFANA_DIR) not in sys.path:
    sys.path.insert(0, str(GRAFANA_DIR))
