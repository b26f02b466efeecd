"""``python -m benchd.runner SPEC.json OUT_DIR``: run one benchmark in this (child) process."""

from __future__ import annotations

import sys

from benchd.runner.worker import main

sys.exit(main())
