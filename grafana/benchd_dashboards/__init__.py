"""benchd's Grafana dashboards as code (grafana-foundation-sdk 11.6) and the Grafana-managed alerts.

Build with ``python grafana/build.py`` (writes ``grafana/dashboards/*.json`` and
``grafana/alerting/benchd-alerts.yml``); ``python grafana/build.py --check`` fails when the
committed files differ from what the code builds. :mod:`benchd_dashboards.panel_queries` reads the
committed JSON with the standard library only (no SDK needed).
"""

from __future__ import annotations
