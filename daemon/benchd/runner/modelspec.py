"""``benchd.yaml``: what a model version folder says about its artifact and inputs (no torch here).

Example::

    artifact: model.pt2            # optional when the folder holds exactly one artifact
    inputs:
      - name: image
        shape: [batch, 3, 224, 224]   # "batch" (or -1) marks the batch dimension
        dtype: float32
        range: [0, 255]               # random uniform values, seeded; integers for int dtypes
      - name: mask
        dataset: samples.npz          # or samples from a file: .npz (key = name) or .npy, [N, ...]
    preprocess:                       # optional, runs inside every timed query
      - {op: rescale, scale: 0.00392156}
      - {op: normalize, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}
      - {op: cast, dtype: float16}
    performance_sample_count: 256     # distinct samples held in memory (LoadGen's performance set)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from benchd.config.reader import FieldReader
from benchd.errors import ConfigError, RunError

SPEC_FILE = "benchd.yaml"
ARTIFACT_SUFFIXES = (".pt2", ".pt", ".ts", ".pth", ".pkl")
INPUT_DTYPES = ("float32", "float16", "bfloat16", "float64", "int64", "int32", "int8", "uint8", "bool")
PREPROCESS_OPS = ("rescale", "normalize", "cast")
BATCH_MARKERS = ("batch", "b", "B", "N", -1)


@dataclass(frozen=True)
class InputSpec:
    """One model input: per-sample shape (batch dimension removed) and where values come from."""

    name: str
    sample_shape: tuple[int, ...]
    batch_dim: int
    dtype: str = "float32"
    low: float = 0.0
    high: float = 1.0
    dataset: str | None = None


@dataclass(frozen=True)
class PreprocessStep:
    """One preprocessing step run inside the timed query."""

    op: str
    scale: float = 1.0
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    dtype: str = "float32"


@dataclass(frozen=True)
class ModelSpec:
    """A parsed ``benchd.yaml`` plus the resolved artifact path."""

    folder: str
    artifact: str
    inputs: tuple[InputSpec, ...]
    preprocess: tuple[PreprocessStep, ...] = ()
    performance_sample_count: int = 256


def find_artifact(folder: Path, named: str | None) -> Path:
    """Return the artifact file of a version folder.

    Raises:
        RunError: ``artifact_not_found`` when it is missing or ambiguous.
    """
    if named:
        path = folder / named
        if not path.is_file():
            raise RunError(
                f"artifact {named!r} named in {folder / SPEC_FILE} does not exist", "artifact_not_found"
            )
        return path
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in ARTIFACT_SUFFIXES)
    if not found:
        raise RunError(
            f"no model artifact ({', '.join(ARTIFACT_SUFFIXES)}) in {folder}", "artifact_not_found"
        )
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise RunError(
            f"several artifacts in {folder} ({names}); name one with 'artifact:' in {SPEC_FILE}",
            "artifact_not_found",
        )
    return found[0]


def _read_input(r: FieldReader) -> InputSpec:
    name = r.string("name", None)
    if not name:
        raise r.error("name", "is required")
    shape = r.raw("shape")
    dataset = r.string("dataset", None)
    dtype = r.string("dtype", "float32", INPUT_DTYPES)
    value_range = r.raw("range", [0, 1])
    if not (
        isinstance(value_range, list)
        and len(value_range) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value_range)
        and value_range[0] <= value_range[1]
    ):
        raise r.error("range", f"expected [low, high] with low <= high, got {value_range!r}")
    if shape is None and dataset is None:
        raise r.error("shape", "is required unless a dataset file gives the samples")
    batch_dim, sample_shape = 0, ()
    if shape is not None:
        if not isinstance(shape, list) or not shape:
            raise r.error("shape", f"expected a list such as [batch, 3, 224, 224], got {shape!r}")
        marks = [i for i, d in enumerate(shape) if d in BATCH_MARKERS and not isinstance(d, bool)]
        if len(marks) != 1:
            raise r.error("shape", f"mark exactly one batch dimension with 'batch' (or -1), got {shape!r}")
        batch_dim = marks[0]
        dims = [d for i, d in enumerate(shape) if i != batch_dim]
        if not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims):
            raise r.error(
                "shape", f"dimensions other than the batch must be positive integers, got {shape!r}"
            )
        sample_shape = tuple(dims)
    spec = InputSpec(
        name, sample_shape, batch_dim, dtype, float(value_range[0]), float(value_range[1]), dataset
    )
    r.finish()
    return spec


def _read_step(r: FieldReader) -> PreprocessStep:
    op = r.string("op", None, PREPROCESS_OPS)
    if op is None:
        raise r.error("op", f"is required: one of {', '.join(PREPROCESS_OPS)}")
    step = PreprocessStep(op=op)
    if op == "rescale":
        step = PreprocessStep(op, scale=r.number("scale", 1.0))
    elif op == "normalize":
        mean, std = r.raw("mean"), r.raw("std")
        for key, val in (("mean", mean), ("std", std)):
            if not (isinstance(val, list) and val and all(isinstance(v, (int, float)) for v in val)):
                raise r.error(key, f"expected a list of numbers, got {val!r}")
        if len(mean) != len(std) or any(s == 0 for s in std):
            raise r.error("std", "must have as many non-zero entries as mean")
        step = PreprocessStep(op, mean=tuple(map(float, mean)), std=tuple(map(float, std)))
    else:
        step = PreprocessStep(op, dtype=r.string("dtype", None, INPUT_DTYPES) or "float32")
    r.finish()
    return step


def read_model_spec(folder: str | Path) -> ModelSpec:
    """Parse and validate ``<folder>/benchd.yaml`` and find the artifact.

    Raises:
        RunError: ``artifact_not_found`` or ``invalid_model_spec`` (the message names file and field).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise RunError(f"model version folder {folder} does not exist", "artifact_not_found")
    spec_path = folder / SPEC_FILE
    if not spec_path.is_file():
        raise RunError(
            f"{spec_path} is missing: a version folder needs the artifact plus {SPEC_FILE} "
            "describing its inputs",
            "invalid_model_spec",
        )
    try:
        data: Any = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
        top = FieldReader(data, "", str(spec_path))
        artifact = find_artifact(folder, top.string("artifact", None))
        raw_inputs = top.raw("inputs")
        if not isinstance(raw_inputs, list) or not raw_inputs:
            raise top.error("inputs", "expected a non-empty list of inputs")
        inputs = tuple(
            _read_input(FieldReader(x, f"inputs[{i}]", str(spec_path))) for i, x in enumerate(raw_inputs)
        )
        steps = top.raw("preprocess", [])
        if not isinstance(steps, list):
            raise top.error("preprocess", "expected a list of steps")
        preprocess = tuple(
            _read_step(FieldReader(x, f"preprocess[{i}]", str(spec_path))) for i, x in enumerate(steps)
        )
        count = top.number("performance_sample_count", 256, ge=1, integer=True)
        top.finish()
    except ConfigError as e:
        raise RunError(str(e), "invalid_model_spec") from e
    except yaml.YAMLError as e:
        raise RunError(f"{spec_path}: not valid YAML: {e}", "invalid_model_spec") from e
    for inp in inputs:
        if inp.dataset and not (folder / inp.dataset).is_file():
            raise RunError(
                f"{spec_path}: inputs: dataset file {inp.dataset!r} does not exist", "invalid_model_spec"
            )
    return ModelSpec(str(folder), str(artifact), inputs, preprocess, count)
