"""One benchmark run from Python or ``benchd bench``: model → folder → worker → RunResult.

No torch import here unless the caller hands in an in-memory ``torch.nn.Module`` (then the caller's own
process already has torch loaded).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from benchd.config import BenchConfig, bench_config_from
from benchd.devices.context import DeviceContext
from benchd.devices.meter import retention_s
from benchd.errors import ConfigError, RunError, RunFailedError
from benchd.records import SCENARIOS, RunResult
from benchd.registry.version_folder import FORMAT_WORDS, SPEC_NAME, sniff_format
from benchd.runner.cpus import configured_cpus
from benchd.runner.launch import EventHandler, run_spec

logger = logging.getLogger(__name__)


def apply_overrides(config: BenchConfig, **overrides: Any) -> BenchConfig:
    """Apply command-line style overrides to a BenchConfig; the result is validated like a config file.

    Understood keys: ``scenarios`` (names), ``device``, ``batch_sizes``, ``duration_s`` (sets
    ``min_duration`` of every scenario, and raises ``max_duration`` to at least 3x), ``seed``, ``threads``,
    ``dtype``, ``amp``, ``compile``, ``allow_pickle``, ``timeout_s``, and per scenario ``target_qps``,
    ``concurrency``, ``samples_per_query``, ``warmup_s``, ``min_query_count``. None values are ignored.

    Raises:
        ConfigError: an unknown key or scenario name, or a value out of its bounds (every problem).
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}
    scenarios = list(config.scenarios)
    names = overrides.pop("scenarios", None)
    if names:
        by_name = {s.name: s for s in scenarios}
        template = dataclasses.replace(scenarios[0], name="single_stream")
        unknown = [n for n in names if n not in SCENARIOS]
        if unknown:
            raise ConfigError("scenarios", f"unknown scenario {unknown[0]!r}; known: {', '.join(SCENARIOS)}")
        scenarios = [by_name.get(n) or dataclasses.replace(template, name=n) for n in names]
    per_scenario: dict[str, Any] = {}
    if (duration := overrides.pop("duration_s", None)) is not None:
        per_scenario["min_duration_s"] = duration
    for key in ("target_qps", "concurrency", "samples_per_query", "warmup_s", "min_query_count"):
        if (value := overrides.pop(key, None)) is not None:
            per_scenario[key] = value
    if per_scenario:
        scenarios = [dataclasses.replace(s, **per_scenario) for s in scenarios]
        if "min_duration_s" in per_scenario:
            scenarios = [
                dataclasses.replace(s, max_duration_s=max(s.max_duration_s, 3 * s.min_duration_s))
                for s in scenarios
            ]
    known = set(type(config).model_fields) - {"scenario_configs", "defaults"}
    for key in overrides:
        if key not in known:
            raise ConfigError(key, "unknown setting")
    return config.replace(scenarios=tuple(scenarios), **overrides)


def _inputs_yaml(inputs: Any) -> list[dict[str, Any]]:
    tensors = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
    out = []
    for i, t in enumerate(tensors):
        shape = list(getattr(t, "shape", ()))
        if not shape:
            raise ConfigError(f"inputs[{i}]", "each example input needs a batch dimension first")
        dtype = str(getattr(t, "dtype", "float32")).removeprefix("torch.")
        out.append({"name": f"input{i}", "shape": ["batch", *shape[1:]], "dtype": dtype})
    return out


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another filesystem, or links not allowed
        shutil.copy2(source, target)


def materialise(model_or_path: Any, inputs: Any, workdir: Path) -> Path:
    """Return a version folder for ``model_or_path`` (a folder, an artifact file or an nn.Module).

    Raises:
        ConfigError: an artifact or module without inputs to describe it.
        RunError: the path does not exist.
    """
    if isinstance(model_or_path, (str, Path)):
        path = Path(model_or_path)
        if path.is_dir():
            return path
        if not path.exists():
            raise RunError(f"{path} does not exist", "artifact_not_found")
        if (path.parent / SPEC_NAME).is_file() and inputs is None:
            return path.parent
        if sniff_format(path) is None:
            raise ConfigError("", f"{path} is not a model artifact ({', '.join(FORMAT_WORDS.values())})")
        if inputs is None:
            raise ConfigError("inputs", f"{path} has no {SPEC_NAME} beside it: pass example inputs")
        folder = workdir / "model"
        folder.mkdir(parents=True)
        _link_or_copy(path.resolve(), folder / path.name)  # inside the folder: no symlink out of it
        (folder / SPEC_NAME).write_text(
            yaml.safe_dump({"artifact": path.name, "inputs": _inputs_yaml(inputs)})
        )
        return folder
    if inputs is None:
        raise ConfigError("inputs", "an in-memory model needs example inputs (a tensor or tuple of tensors)")
    # The caller handed us a torch module, so torch is already loaded in this process; this module must
    # not import it itself (the daemon imports evaluation helpers and stays torch-free).
    torch = sys.modules["torch"]

    args = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    dims = tuple({0: torch.export.Dim("batch", min=1, max=1 << 16)} for _ in args)
    program = torch.export.export(model_or_path.eval(), args, dynamic_shapes=dims)
    folder = workdir / "model"
    folder.mkdir(parents=True)
    torch.export.save(program, str(folder / "model.pt2"))
    (folder / SPEC_NAME).write_text(yaml.safe_dump({"artifact": "model.pt2", "inputs": _inputs_yaml(args)}))
    return folder


def infer_names(path: Path) -> tuple[str, str]:
    """``(model, version)`` of a version folder laid out as ``<model>/<version>/`` (or of its artifact).

    The folder's name is the version and its parent's name the model, as in a local registry.
    """
    folder = (path if path.is_dir() else path.parent).resolve()
    model = folder.parent.name or folder.name
    return model, folder.name


def run_folder(
    folder: Path,
    config: BenchConfig,
    out_dir: Path,
    *,
    model: str,
    version: str,
    devices: DeviceContext,
    on_event: EventHandler | None = None,
    allow_native_code: bool = False,
) -> RunResult:
    """Benchmark one version folder with ``config``, writing outputs to ``out_dir``.

    ``allow_native_code`` lets AOTInductor packages (compiled native code) load.
    """
    device = devices.resolve(config.device)
    spec = config.run_spec(
        model=model,
        version=version,
        model_path=str(folder),
        device=device,
        allow_native_code=allow_native_code,
        cpus=configured_cpus(config.cpu_set, config.threads),
    )
    return run_spec(
        spec, out_dir, meter=devices.sampler, on_event=on_event, host_fingerprint=devices.fingerprint(device)
    )


def evaluate(
    model_or_path: Any,
    inputs: Any = None,
    config: Any = None,
    *,
    model: str | None = None,
    version: str | None = None,
    out_dir: str | Path | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    devices: str = "auto",
    allow_native_code: bool = False,
    **overrides: Any,
) -> RunResult:
    """See :func:`benchd.evaluate`."""
    cfg = apply_overrides(bench_config_from(config), **overrides)
    with tempfile.TemporaryDirectory(prefix="benchd-") as tmp:
        folder = materialise(model_or_path, inputs, Path(tmp))
        if isinstance(model_or_path, (str, Path)):
            inferred = infer_names(Path(model_or_path))
        else:
            inferred = (type(model_or_path).__name__, "local")
        target = Path(out_dir) if out_dir else Path(tmp) / "out"
        ctx = DeviceContext(devices, retain_s=retention_s(cfg.timeout_s))
        try:
            result = run_folder(
                folder,
                cfg,
                target,
                model=model or inferred[0],
                version=version or inferred[1],
                devices=ctx,
                on_event=on_event,
                allow_native_code=allow_native_code,
            )
        finally:
            ctx.close()
        if out_dir is None:
            result = _drop_files(result)
    if not result.ok:
        raise RunFailedError(f"{result.error_kind}: {result.error}", result.error_kind)
    return result


def _drop_files(result: RunResult) -> RunResult:
    """Outputs in a temporary folder are gone after :func:`evaluate`: do not point at them."""
    return dataclasses.replace(
        result,
        output_dir=None,
        results=tuple(dataclasses.replace(r, latencies_file=None) for r in result.results),
    )
