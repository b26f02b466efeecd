"""The benchmark worker: the only process that imports torch.

``python -m benchd.runner SPEC.json OUT_DIR`` loads the model version described by the RunSpec, runs
every (batch size, scenario) pair, saves raw latencies as ``.npy`` files and writes ``result.json``. It
reports progress as JSON lines on stdout. A failure it can name is written to ``result.json`` as
``{"error": {"kind", "message"}}`` (exit status 3); a crash leaves no result, and the parent reports
the signal.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchd.errors import RunError
from benchd.loadgen import run_scenario
from benchd.loadgen.stats import percentile_s
from benchd.records import RunSpec, ScenarioResult, from_dict, to_dict
from benchd.runner.cpus import pin_process
from benchd.runner.dims import count_draws
from benchd.runner.prepare import LoadedVersion, load_version
from benchd.runner.shapes import explain_guard_error
from benchd.runner.timing import DeviceTimer, autocast_context

EXIT_HANDLED_ERROR = 3
_SHAPE_WORDS = ("shape", "size", "dimension", "dtype", "expected", "mismatch", "must match", "guard")


def _emit_progress(scenario: str, message: str) -> None:
    emit("progress", scenario=scenario, message=message)


def emit(event: str, **fields: Any) -> None:
    """Write one progress event as a JSON line on stdout (read by the parent)."""
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def resolve_device(name: str) -> torch.device:
    """Map ``auto``/``cpu``/``cuda``/``cuda:N`` to a usable torch device.

    Raises:
        RunError: ``device_unavailable`` when CUDA is asked for but not usable.
    """
    if name == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RunError(
            f"device {name} requested but CUDA is not available to torch {torch.__version__} "
            f"(CUDA build: {torch.version.cuda or 'none'})",
            "device_unavailable",
        )
    device = torch.device(name if ":" in name else "cuda:0")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise RunError(
            f"device {name} requested but only {torch.cuda.device_count()} CUDA device(s) are visible",
            "device_unavailable",
        )
    return device


def classify_error(e: BaseException, first_query: bool) -> RunError:
    """Turn an exception from model code into a typed :class:`RunError` (OOM, input mismatch, model error)."""
    if isinstance(e, RunError):
        return e
    text = f"{type(e).__name__}: {e}"
    if (
        isinstance(e, MemoryError)
        or any(w in str(e).lower() for w in ("out of memory", "can't allocate"))
        or type(e).__name__ == "OutOfMemoryError"
    ):
        return RunError(f"out of memory: {text}", "out_of_memory")
    if first_query and any(w in str(e).lower() for w in _SHAPE_WORDS):
        return RunError(f"the model rejected the inputs benchd.yaml describes: {text}", "input_mismatch")
    where = "on its first query" if first_query else "during the run"
    return RunError(f"the model raised {where}: {text}", "model_error")


def worker_fingerprint(device: torch.device) -> dict[str, Any]:
    """What the worker knows of its environment: torch, CUDA and cuDNN versions, threads, device name."""
    info: dict[str, Any] = {
        "torch_version": torch.__version__,
        "torch_cuda_version": torch.version.cuda,
        "torch_threads": torch.get_num_threads(),
        "python_version": platform.python_version(),
    }
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
        info["cudnn_version"] = torch.backends.cudnn.version()
    return info


def load_and_report(spec: RunSpec, device: torch.device, seed: int | None = None) -> LoadedVersion:
    """Load ``spec``'s version the way every worker does and report it (the ``loaded`` event).

    Raises:
        RunError: the artifact or spec is missing or bad, or the inputs do not fit the model.
    """
    try:
        version = load_version(spec, device, seed)
    except RunError:
        raise
    except Exception as e:  # noqa: BLE001
        raise classify_error(e, first_query=False) from e
    art = version.artifact
    emit("loaded", artifact=str(art.path), format=art.fmt, note=art.note, device=str(device))
    return version


def run(spec: RunSpec, out_dir: Path) -> tuple[list[ScenarioResult], list[tuple[int, str, str]]]:
    """Benchmark ``spec``: its scenario results (latency files in ``out_dir``) and the skipped sizes."""
    pin_process(spec.cpus)  # before torch starts its thread pool, which inherits the set
    if spec.threads:
        torch.set_num_threads(spec.threads)
    torch.manual_seed(spec.seed)
    device = resolve_device(spec.device)
    version = load_and_report(spec, device)
    amp_dtype = (torch.float16 if device.type == "cuda" else torch.bfloat16) if spec.amp else None
    results: list[ScenarioResult] = []
    skipped: list[tuple[int, str, str]] = []
    ran_multi_stream = False
    for batch_size in spec.batch_sizes:
        for settings in spec.scenarios:
            if settings.name == "multi_stream":
                if ran_multi_stream:
                    continue  # its query size is samples_per_query, whatever the batch-size sweep says
                ran_multi_stream = True
            bs = settings.samples_per_query_at(batch_size)
            reason = version.skip_reason(bs)
            if reason:
                skipped.append((bs, settings.name, reason))
                emit("skipped", scenario=settings.name, batch_size=bs, reason=reason)
                continue
            timer = DeviceTimer() if device.type == "cuda" else None
            prepared = version.query(bs, timer)
            emit(
                "scenario",
                scenario=settings.name,
                batch_size=bs,
                warmup_s=settings.warmup_s,
                min_duration_s=settings.min_duration_s,
                max_duration_s=settings.max_duration_s,
            )
            with ExitStack() as stack:
                stack.enter_context(torch.inference_mode())
                stack.enter_context(autocast_context(device, amp_dtype))
                try:
                    prepared.query(0)
                except Exception as e:  # noqa: BLE001
                    raise explain_first_query(e, version, bs) from e
                if timer:
                    timer.reset()
                try:
                    outcome = run_scenario(
                        with_inference_mode(prepared.query, amp_dtype, device)
                        if settings.name == "concurrency"
                        else prepared.query,
                        settings,
                        batch_size=bs,
                        device=str(device),
                        on_progress=functools.partial(_emit_progress, settings.name),
                    )
                except Exception as e:  # noqa: BLE001
                    raise classify_error(e, first_query=False) from e
            result = _save(outcome.result, outcome.latencies_ns, out_dir, timer)
            result = replace(
                result,
                artifact_format=version.fmt,
                artifact_note=version.artifact.note or None,
                drawn_dims=count_draws(prepared.draws, result.queries),
            )
            results.append(result)
            emit(
                "scenario_done",
                scenario=settings.name,
                batch_size=bs,
                p50_s=result.latency.p50_s,
                p99_s=result.latency.p99_s,
                throughput_sps=result.throughput_sps,
                valid=result.valid,
            )
    if skipped and not results:
        reasons = dict.fromkeys(r for _, _, r in skipped)
        raise RunError("nothing could run: " + "; ".join(reasons), "input_mismatch")
    return results, skipped


def explain_first_query(e: BaseException, version: LoadedVersion, size: int) -> RunError:
    """The error of a model's first query, with a shape guard or index error explained."""
    what = f"{version.artifact.path.name} ({version.fmt})"
    guard = explain_guard_error(e, version.model_spec, what, size)
    if guard is not None:
        return guard
    error = classify_error(e, first_query=True)
    if "index out of range" in str(e).lower():
        ints = [i.field for i in version.model_spec.inputs if i.dtype.startswith(("int", "uint"))]
        return RunError(
            f"{error} (integer inputs such as token ids must stay below the vocabulary size; their "
            f"range: in {version.model_spec.spec_path} includes both ends: check {', '.join(ints)}.range)",
            "input_mismatch",
        )
    return error


def with_inference_mode(query: Any, amp_dtype: torch.dtype | None, device: torch.device) -> Any:
    """Concurrency streams run in their own threads, where inference/autocast modes are not inherited."""
    import threading

    local = threading.local()

    def query_in_mode(i: int) -> object:
        if not getattr(local, "entered", False):
            local.stack = ExitStack()
            local.stack.enter_context(torch.inference_mode())
            local.stack.enter_context(autocast_context(device, amp_dtype))
            local.entered = True
        return query(i)

    return query_in_mode


def _save(
    result: ScenarioResult, latencies_ns: np.ndarray, out_dir: Path, timer: DeviceTimer | None
) -> ScenarioResult:
    path = out_dir / f"latencies-{result.scenario}-bs{result.batch_size}.npy"
    np.save(path, latencies_ns)
    changes: dict[str, Any] = {"latencies_file": str(path)}
    if timer and timer.starts:
        device_ns = np.sort(timer.read_ns())
        changes["device_time_p50_s"] = percentile_s(device_ns, 50.0)
        changes["device_time_p99_s"] = percentile_s(device_ns, 99.0)
    return replace(result, **changes)


def worker_main(argv: list[str] | None, usage: str, work: Callable[[Path, Path], dict[str, Any]]) -> int:
    """The entry point shared by the workers: ``INPUT.json OUT_DIR`` in, ``OUT_DIR/result.json`` out.

    ``work(input_path, out_dir)`` returns the result payload. A :class:`RunError` (with its ``side``, for
    comparison workers) or any other exception becomes ``{"error": {...}}`` and exit status 3, so nothing
    is lost; ``result.json`` is written atomically.
    """
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        sys.stderr.write(f"usage: {usage}\n")
        return 2
    input_path, out_dir = Path(args[0]), Path(args[1])
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    payload: dict[str, Any]
    code = 0
    try:
        payload = work(input_path, out_dir)
    except RunError as e:
        error = {"kind": e.kind, "message": str(e), "side": getattr(e, "side", None)}
        payload, code = {"error": error}, EXIT_HANDLED_ERROR
    except Exception as e:  # noqa: BLE001 - anything unexpected is still reported, never lost
        tail = "".join(traceback.format_exception(e)[-3:])
        error = {"kind": "internal", "message": f"{type(e).__name__}: {e}\n{tail}", "side": None}
        payload, code = {"error": error}, EXIT_HANDLED_ERROR
    payload.update(started_unix_s=started, ended_unix_s=time.time(), pid=os.getpid())
    tmp = out_dir / "result.json.tmp"
    tmp.write_text(json.dumps(payload))
    tmp.replace(out_dir / "result.json")
    return code


def _run_spec_file(spec_path: Path, out_dir: Path) -> dict[str, Any]:
    spec = from_dict(RunSpec, json.loads(spec_path.read_text()))
    results, skipped = run(spec, out_dir)
    return {
        "results": [to_dict(r) for r in results],
        "skipped": [list(s) for s in skipped],
        "worker": worker_fingerprint(resolve_device(spec.device)),
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m benchd.runner SPEC.json OUT_DIR``."""
    return worker_main(argv, "python -m benchd.runner SPEC.json OUT_DIR", _run_spec_file)
