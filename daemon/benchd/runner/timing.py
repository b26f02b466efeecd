"""Query functions around a model: what one timed query does on the CPU or on a CUDA device.

A CPU query runs preprocessing and the forward pass. A CUDA query also copies its inputs host to device
(from pinned memory) and synchronises, so the harness's ``perf_counter_ns`` pair brackets all of it;
CUDA events around the same work record device time, read after the phase, so the harness overhead
can be seen. Only this module and ``devices/nvml.py`` convert units: device times leave here in ns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch

QueryFn = Callable[[int], object]


@dataclass
class DeviceTimer:
    """CUDA event pairs for the first ``limit`` queries of a phase; ``read_ns()`` gives device times (ns).

    Bounded so a long phase keeps no unbounded per-query objects; 10k queries describe the
    harness-versus-device gap well enough.
    """

    limit: int = 10_000
    starts: list[torch.cuda.Event] = field(default_factory=list)
    ends: list[torch.cuda.Event] = field(default_factory=list)

    def reset(self) -> None:
        """Forget recorded events (called between warm-up and the measured phase)."""
        self.starts.clear()
        self.ends.clear()

    def read_ns(self) -> np.ndarray:
        """Device time of each recorded query in ns."""
        torch.cuda.synchronize()
        ms = [s.elapsed_time(e) for s, e in zip(self.starts, self.ends, strict=True)]
        return (np.asarray(ms, dtype=np.float64) * 1e6).astype(np.int64)


def autocast_context(device: torch.device, amp_dtype: torch.dtype | None) -> AbstractContextManager[object]:
    """An autocast context for AMP, or a null context when AMP is off."""
    if amp_dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=amp_dtype)


@dataclass(frozen=True)
class PreparedCall:
    """One prepared batch as the timed query calls it.

    ``args``/``kwargs`` are built once, before timing, from the host tensors. When a query must touch the
    tensors first (preprocessing, a host-to-device copy), it transforms ``tensors`` and calls ``rebuild``
    on the results, which puts them back into the same ``(args, kwargs)`` structure.
    """

    tensors: tuple[torch.Tensor, ...]
    args: tuple[object, ...]
    kwargs: dict[str, object]
    rebuild: Callable[[Sequence[torch.Tensor]], tuple[tuple[object, ...], dict[str, object]]]


def make_query(
    call: Callable[..., object],
    batches: Sequence[PreparedCall],
    device: torch.device,
    preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
    timer: DeviceTimer | None = None,
) -> QueryFn:
    """Return ``query(i)`` that runs batch ``i % len(batches)`` through ``call`` to completion.

    Callers enter ``torch.inference_mode()`` (and autocast) once around the whole phase, per thread,
    rather than per query. On the CPU without preprocessing, a query is only ``call(*args, **kwargs)``
    on prepared values.
    """
    n = len(batches)
    if device.type == "cpu":
        if preprocess is None:
            plain = [b.args for b in batches]
            if not any(b.kwargs for b in batches):

                def cpu_query(i: int) -> object:
                    return call(*plain[i % n])

                return cpu_query
            kws = [b.kwargs for b in batches]

            def cpu_query_kw(i: int) -> object:
                k = i % n
                return call(*plain[k], **kws[k])

            return cpu_query_kw

        def cpu_query_pre(i: int) -> object:
            b = batches[i % n]
            args, kwargs = b.rebuild([preprocess(x) for x in b.tensors])
            return call(*args, **kwargs)

        return cpu_query_pre

    sync = torch.cuda.synchronize
    pre = preprocess or (lambda x: x)

    def run_on_device(b: PreparedCall) -> object:
        args, kwargs = b.rebuild([pre(x.to(device, non_blocking=True)) for x in b.tensors])
        return call(*args, **kwargs)

    if timer is None:

        def cuda_query(i: int) -> object:
            out = run_on_device(batches[i % n])
            sync(device)
            return out

        return cuda_query

    starts, ends, limit = timer.starts, timer.ends, timer.limit
    event = torch.cuda.Event

    def cuda_query_timed(i: int) -> object:
        if len(starts) >= limit:
            out = run_on_device(batches[i % n])
            sync(device)
            return out
        start, end = event(enable_timing=True), event(enable_timing=True)
        start.record()
        out = run_on_device(batches[i % n])
        end.record()
        sync(device)
        starts.append(start)
        ends.append(end)
        return out

    return cuda_query_timed
