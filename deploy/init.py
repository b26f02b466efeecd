#!/usr/bin/env python3
"""Prepare the compose stack once, before ``docker compose up``: a Grafana password and rendered rules.

    python3 deploy/init.py [--docs-url URL] [--grafana-url URL]

- ``deploy/secrets/grafana-admin-password``: a random Grafana admin password (in a 0700 folder), made once
  and kept; Grafana reads it as a compose secret. The stack never starts with admin/admin.
- ``deploy/rendered/benchd-rules.yml``: the alert rules Prometheus loads, with the runbook and dashboard
  addresses filled in (``deploy/render_rules.py``; defaults: the public README and Grafana on
  http://localhost:3000, where the stack publishes it, on 127.0.0.1 only).
- ``deploy/rendered/grafana-alerts.yml``: the same for the Grafana-managed alternative (not loaded by
  default: see the README's "Alerts and runbooks").

Both folders are git-ignored. Re-run it after changing the rules or the addresses. Standard library only.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import secrets
import sys
from pathlib import Path
from typing import Any

DEPLOY = Path(__file__).resolve().parent
REPO = DEPLOY.parent
PASSWORD_FILE = Path("secrets") / "grafana-admin-password"
RENDERED = {
    Path("rendered") / "benchd-rules.yml": REPO / "deploy" / "prometheus" / "benchd-rules.yml",
    Path("rendered") / "grafana-alerts.yml": REPO / "grafana" / "alerting" / "benchd-alerts.yml",
}
"""What the compose file expects under deploy/ (relative path) -> the source it is rendered from."""


def _renderer() -> Any:
    spec = importlib.util.spec_from_file_location("benchd_render_rules", DEPLOY / "render_rules.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ensure_password(path: Path) -> bool:
    """Write a random password to ``path`` unless one is there; True when it was made now.

    The folder is 0700 (other users on the host cannot reach the file); the file itself is 0644 because
    compose mounts it into the Grafana container, whose user (uid 472) is not the file's owner.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    if path.is_file() and path.read_text(encoding="utf-8").strip():
        return False
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(secrets.token_urlsafe(24) + "\n")
    return True


def main(argv: list[str] | None = None) -> int:
    """Make the password (once) and render the rules; exit 2 with a sentence on a bad URL."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs-url", help="where benchd's README (the runbooks) lives")
    parser.add_argument(
        "--grafana-url", help="the address people open Grafana at [default: http://localhost:3000]"
    )
    parser.add_argument("--out-dir", type=Path, default=DEPLOY, help="the compose folder [default: deploy/]")
    args = parser.parse_args(argv)
    render = _renderer()
    try:
        urls = render.base_urls(args.docs_url, args.grafana_url)
        for target, source in RENDERED.items():
            render.render_file(source, args.out_dir / target, urls)
    except (ValueError, OSError) as e:
        sys.stderr.write(f"init: {e}\n")
        return 2
    made = ensure_password(args.out_dir / PASSWORD_FILE)
    state = "made" if made else "kept"
    sys.stdout.write(
        f"rules rendered into {args.out_dir / 'rendered'} (runbooks: {urls['BENCHD_DOCS_URL']}, "
        f"dashboards: {urls['BENCHD_GRAFANA_URL']})\n"
        f"Grafana admin password {state}: {args.out_dir / PASSWORD_FILE} (user admin)\n"
        f"next: cd {args.out_dir} && docker compose up -d   # Grafana on http://127.0.0.1:3000\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
