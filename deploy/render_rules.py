#!/usr/bin/env python3
r"""Render benchd's alert rules for one deployment: fill in where the runbooks and Grafana live.

The rules (``deploy/prometheus/benchd-rules.yml``) and the Grafana-managed alerts
(``grafana/alerting/benchd-alerts.yml``) name these addresses once each, as placeholders:

- ``${BENCHD_DOCS_URL}``: where benchd's README lives (runbook links: ``.../README.md#alert-<name>``);
- ``${BENCHD_GRAFANA_URL}``: your Grafana (dashboard links with the alert's model, scenario and device).

::

    python3 deploy/render_rules.py deploy/prometheus/benchd-rules.yml /etc/prometheus/benchd-rules.yml \
        --docs-url https://git.example.com/ml/benchd/-/blob/main --grafana-url https://grafana.example.com

Each option defaults to the environment variable of the same name, then to :data:`DEFAULTS` (the public
README, and the compose stack's Grafana on localhost). ``envsubst '$BENCHD_DOCS_URL $BENCHD_GRAFANA_URL'``
does the same substitution. Standard library only.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from urllib.parse import urlsplit

PLACEHOLDERS = ("BENCHD_DOCS_URL", "BENCHD_GRAFANA_URL")
DEFAULTS = {
    "BENCHD_DOCS_URL": "https://github.com/benchd/benchd/blob/main",
    "BENCHD_GRAFANA_URL": "http://localhost:3000",
}
_TOKEN = re.compile(r"\$\{(BENCHD_[A-Z_]+)\}")


class RenderError(ValueError):
    """A base URL is unusable, or a placeholder has no value."""


def check_url(name: str, url: str) -> str:
    """Return ``url`` without a trailing slash.

    Raises:
        RenderError: not an absolute http(s) URL, or it holds characters that would break the YAML.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise RenderError(f"{name} must be an absolute http(s) URL, got {url!r}")
    if any(c in url for c in " \"'\n\t{}#?"):
        raise RenderError(f"{name} must be a plain base URL (no spaces, quotes, braces, query or fragment)")
    return url.rstrip("/")


def base_urls(docs_url: str | None = None, grafana_url: str | None = None) -> dict[str, str]:
    """The value of each placeholder: the argument, else the environment variable, else the default.

    Raises:
        RenderError: a URL is unusable.
    """
    given = {"BENCHD_DOCS_URL": docs_url, "BENCHD_GRAFANA_URL": grafana_url}
    return {
        name: check_url(name, given[name] or os.environ.get(name) or DEFAULTS[name]) for name in PLACEHOLDERS
    }


def render(text: str, values: dict[str, str]) -> str:
    """Replace every ``${BENCHD_...}`` placeholder in ``text``.

    Raises:
        RenderError: a placeholder in ``text`` has no value.
    """
    unknown = sorted({m.group(1) for m in _TOKEN.finditer(text)} - set(values))
    if unknown:
        raise RenderError(f"no value for placeholder(s) {', '.join(unknown)}")
    return _TOKEN.sub(lambda m: values[m.group(1)], text)


def placeholders_left(text: str) -> list[str]:
    """The placeholders still in ``text`` (empty once rendered)."""
    return sorted({m.group(1) for m in _TOKEN.finditer(text)})


def render_file(source: Path, target: Path, values: dict[str, str]) -> None:
    """Render ``source`` into ``target`` (its folder is created)."""
    rendered = render(source.read_text(encoding="utf-8"), values)
    header = f"# Rendered by deploy/render_rules.py from {source.name}; edit the source, not this copy.\n"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(header + rendered, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Render one file; exit 2 with a sentence when a URL is unusable."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="rules file with placeholders")
    parser.add_argument("target", type=Path, help="where the rendered copy goes")
    parser.add_argument("--docs-url", help=f"[default: $BENCHD_DOCS_URL or {DEFAULTS['BENCHD_DOCS_URL']}]")
    parser.add_argument(
        "--grafana-url", help=f"[default: $BENCHD_GRAFANA_URL or {DEFAULTS['BENCHD_GRAFANA_URL']}]"
    )
    args = parser.parse_args(argv)
    try:
        render_file(args.source, args.target, base_urls(args.docs_url, args.grafana_url))
    except (RenderError, OSError) as e:
        sys.stderr.write(f"render_rules: {e}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
