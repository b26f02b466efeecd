"""benchd: continuous inference-performance regression monitoring.

The public Python API is :func:`evaluate` and :func:`load_config`. Importing this package has no side
effects: it does not import torch, start NVML or register any metric.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from benchd.version import __version__

if TYPE_CHECKING:  # pragma: no cover
    from benchd.config import BenchConfig
    from benchd.records import RunResult

__all__ = ["__version__", "evaluate", "load_config"]


def load_config(path: str) -> BenchConfig:
    """Load a benchmark config (YAML) and validate it.

    The file is either a daemon config (its ``benchmark:`` section is returned) or a bare benchmark config
    (``scenarios``, ``defaults``, ``batch_sizes``, ``device``, ... at the top).

    Raises:
        ConfigError: naming the file and the field path of every problem found, one per line.
    """
    from benchd.config import load_bench_config

    return load_bench_config(path)


def evaluate(model_or_path: Any, inputs: Any = None, config: Any = None, **overrides: Any) -> RunResult:
    """Benchmark a model the way ``benchd bench`` does and return its :class:`RunResult`.

    Args:
        model_or_path: a model version folder (artifact plus ``benchd.yaml``), an artifact file, or an
            in-memory ``torch.nn.Module`` (which is saved with ``torch.export`` into a temporary folder
            first, so the run still happens in an isolated worker process).
        inputs: example inputs (a tensor, tuple of tensors or numpy arrays) for an in-memory model or an
            artifact without ``benchd.yaml``; the first dimension is the batch dimension.
        config: a :class:`BenchConfig`, a path to a YAML config, or a dict of config fields; a file or
            dict may be a daemon config (its ``benchmark:`` section is used) or a bare benchmark config.
        **overrides: config fields to override, e.g. ``scenarios=["single_stream"]``.

    Raises:
        ConfigError: the config is invalid.
        RunFailedError: the worker failed; the error carries the typed reason.
    """
    from benchd.evaluation import evaluate as _evaluate

    return _evaluate(model_or_path, inputs=inputs, config=config, **overrides)
