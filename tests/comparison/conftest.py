"""Model versions for the comparison tests, written once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.comparison.models import write_models


@pytest.fixture(scope="session")
def versions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """mlp (~0.1 ms), mlp_slow (width 8, ~1.6 ms), faulty (raises on its first query)."""
    root = tmp_path_factory.mktemp("comparison-models")
    specs = {
        "mlp": ("mlp", {}),
        "mlp_slow": ("mlp", {"width": 8}),
        "faulty": ("faulty", {"mode": "raise"}),
    }
    write_models({root / name: spec for name, spec in specs.items()})
    return {name: root / name for name in specs}
