"""Input generation: LoadGen's performance sample set, held in memory, cut into ready batches.

Samples come from the ``benchd.yaml`` input specs (seeded random values in the declared range), from a
dataset file (``.npz`` keyed by input name, or ``.npy``; first axis = samples), or, for inputs whose shape
uses ``dims:`` (and attention masks), are made per batch at that batch's drawn sizes. Batches are assembled
once, before timing, so a timed query only indexes a list; preprocessing steps that the spec asks for
run inside the timed query, as a production pipeline would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from benchd.errors import RunError
from benchd.runner.dims import draw_all
from benchd.runner.modelspec import InputSpec, ModelSpec, PreprocessStep, resolve_inside

_TORCH_DTYPES = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
    "int64": torch.int64,
    "int32": torch.int32,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "bool": torch.bool,
}
#: At most this many distinct batches per batch size: enough to defeat caches, bounded in memory.
MAX_DISTINCT_BATCHES = 64


def torch_dtype(name: str) -> torch.dtype:
    """Return the torch dtype named ``name``."""
    return _TORCH_DTYPES[name]


def _load_dataset(folder: Path, spec: InputSpec) -> torch.Tensor:
    path = resolve_inside(folder, str(spec.dataset), f"{spec.field}.dataset")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if spec.name not in z.files:
                    raise RunError(
                        f"{path} has no array named {spec.name!r} (has: {', '.join(z.files)})",
                        "invalid_model_spec",
                    )
                array = z[spec.name]
        else:
            array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise RunError(f"cannot read dataset {path}: {e}", "invalid_model_spec") from e
    if array.ndim < 1 or len(array) == 0:
        raise RunError(f"dataset {path} holds no samples (shape {array.shape})", "invalid_model_spec")
    if spec.sample_shape and tuple(array.shape[1:]) != spec.sample_shape:
        raise RunError(
            f"dataset {path}: samples have shape {tuple(array.shape[1:])}, but benchd.yaml declares "
            f"{list(spec.sample_shape)} for input {spec.name!r}",
            "input_mismatch",
        )
    return torch.from_numpy(np.ascontiguousarray(array)).to(torch_dtype(spec.dtype))


def _random_samples(spec: InputSpec, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    dtype = torch_dtype(spec.dtype)
    if dtype == torch.bool:
        return torch.rand(shape, generator=gen) < 0.5
    if dtype.is_floating_point:
        values = torch.rand(shape, generator=gen, dtype=torch.float32) * (spec.high - spec.low) + spec.low
        return values.to(dtype)
    return torch.randint(int(spec.low), int(spec.high) + 1, shape, generator=gen).to(dtype)


def _is_drawn(spec: InputSpec) -> bool:
    return spec.mask is not None or any(isinstance(d, str) for d in spec.sample_shape)


def sample_set(model_spec: ModelSpec, seed: int) -> dict[str, torch.Tensor]:
    """Samples of every fixed-shape input (random or from its dataset), first axis = samples, equal counts.

    Inputs whose shape uses a ``dims:`` name, and masks, are made per batch by :func:`make_batches`.
    """
    gen = torch.Generator().manual_seed(seed)
    folder = Path(model_spec.folder)
    count = model_spec.performance_sample_count
    tensors = {
        s.name: _load_dataset(folder, s)
        if s.dataset
        else _random_samples(s, (count, *(int(d) for d in s.sample_shape)), gen)
        for s in model_spec.inputs
        if not _is_drawn(s)
    }
    count = min((len(t) for t in tensors.values()), default=count)
    return {name: t[:count] for name, t in tensors.items()}


def _drawn_batch(
    spec: InputSpec, batch_size: int, draws: dict[str, int], gen: torch.Generator
) -> torch.Tensor:
    shape = (batch_size, *(draws[d] if isinstance(d, str) else d for d in spec.sample_shape))
    if spec.mask is None:
        return _random_samples(spec, shape, gen)
    mask = torch.zeros(shape, dtype=torch_dtype(spec.dtype))
    mask[..., : draws[spec.mask]] = 1  # attention over the first <drawn length> positions
    return mask


def make_batches(
    model_spec: ModelSpec,
    samples: dict[str, torch.Tensor],
    batch_size: int,
    *,
    seed: int = 0,
    float_dtype: torch.dtype = torch.float32,
    pin_memory: bool = False,
) -> tuple[list[dict[str, torch.Tensor]], list[dict[str, int]]]:
    """Cut the sample set into up to :data:`MAX_DISTINCT_BATCHES` batches of ``batch_size``.

    Returns the batches (input name -> tensor) and, per batch, the values drawn for each ``dims:`` entry
    (seeded by ``seed``, so both sides of a comparison see the same). Each input's batch dimension is
    placed where its spec declares it; floating inputs are cast to ``float_dtype``. With fewer samples
    than a batch needs, samples repeat.
    """
    count = len(next(iter(samples.values()))) if samples else model_spec.performance_sample_count
    n_batches = max(1, min(MAX_DISTINCT_BATCHES, count // batch_size))
    draws = draw_all(model_spec.dims, n_batches, seed + batch_size)
    gen = torch.Generator().manual_seed(seed * 7919 + batch_size)
    batches = []
    for b in range(n_batches):
        idx = torch.arange(b * batch_size, (b + 1) * batch_size) % count
        parts = {}
        for spec in model_spec.inputs:
            if spec.name in samples:
                part = samples[spec.name].index_select(0, idx)
            else:
                part = _drawn_batch(spec, batch_size, draws[b], gen)
            if part.is_floating_point() and part.dtype != float_dtype:
                part = part.to(float_dtype)
            if spec.batch_dim != 0:
                part = part.movedim(0, spec.batch_dim)
            part = part.contiguous()
            parts[spec.name] = part.pin_memory() if pin_memory else part
        batches.append(parts)
    return batches, draws


def make_preprocess(
    steps: Sequence[PreprocessStep], device: torch.device
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Compose the preprocessing steps into one function applied to every input tensor of a query."""
    ops: list[Callable[[torch.Tensor], torch.Tensor]] = []
    for step in steps:
        if step.op == "rescale":

            def rescale(x: torch.Tensor, s: float = step.scale) -> torch.Tensor:
                return x.float() * s if not x.is_floating_point() else x * s

            ops.append(rescale)
        elif step.op == "normalize":
            mean = torch.tensor(step.mean, device=device).reshape(1, -1)
            std = torch.tensor(step.std, device=device).reshape(1, -1)

            def normalize(
                x: torch.Tensor, mean: torch.Tensor = mean, std: torch.Tensor = std
            ) -> torch.Tensor:
                extra = (1,) * (x.dim() - 2)
                return (x - mean.reshape(*mean.shape, *extra)) / std.reshape(*std.shape, *extra)

            ops.append(normalize)
        else:
            target = torch_dtype(step.dtype)

            def cast(x: torch.Tensor, dt: torch.dtype = target) -> torch.Tensor:
                return x.to(dt)

            ops.append(cast)

    def preprocess(x: torch.Tensor) -> torch.Tensor:
        for op in ops:
            x = op(x)
        return x

    return preprocess
