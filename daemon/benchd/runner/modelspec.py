"""``benchd.yaml``: what a model version folder says about its artifact and inputs (no torch here).

Example::

    artifact: model.pt2            # optional when the folder holds exactly one artifact (found by content)
    format: export                 # optional check: export, aoti, torchscript, hf or pickle
    pass_inputs: auto              # auto (from the artifact's signature), positional, keyword or dict
    dims:                          # optional: dimensions drawn per query (see benchd.runner.dims)
      seq: {dist: choice, values: [32, 64, 128], weights: [5, 3, 2]}
    inputs:
      - name: image
        shape: [batch, 3, 224, 224]   # "batch" (or -1) marks the batch dimension; a name from dims: draws
        dtype: float32
        range: [0, 255]               # random uniform values, seeded; integers for int dtypes (both ends in)
      - name: input_ids
        shape: [batch, seq]
        dtype: int64
        range: [0, 30521]             # token ids of a 30522-word vocabulary
      - name: attention_mask
        shape: [batch, seq]
        mask: seq                     # 1 for the first <drawn seq> positions of the last axis, then 0
      - name: mask
        dataset: samples.npz          # or samples from a file: .npz (key = name) or .npy, [N, ...]
    preprocess:                       # optional, runs inside every timed query
      - {op: rescale, scale: 0.00392156}
      - {op: normalize, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}
      - {op: cast, dtype: float16}
    performance_sample_count: 256     # distinct samples held in memory (LoadGen's performance set)

``artifact:`` and ``dataset:`` must resolve inside the version folder (symlinks included).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchd.config.reader import FieldReader
from benchd.errors import ConfigError, RunError
from benchd.registry.version_folder import (
    FORMAT_WORDS,
    FORMATS,
    SPEC_NAME,
    find_artifact,
    read_spec_data,
    resolve_inside,
)
from benchd.runner.dims import DISTRIBUTIONS, DimSpec

SPEC_FILE = SPEC_NAME
INPUT_DTYPES = ("float32", "float16", "bfloat16", "float64", "int64", "int32", "int8", "uint8", "bool")
PREPROCESS_OPS = ("rescale", "normalize", "cast")
BATCH_MARKERS = ("batch", "b", "B", "N", -1)
PASS_INPUTS = ("auto", "positional", "keyword", "dict")


@dataclass(frozen=True)
class InputSpec:
    """One model input: per-sample shape (batch dimension removed) and where values come from.

    ``sample_shape`` entries are sizes or names of ``dims:`` entries (drawn per query). ``mask`` names a
    dimension: the input is an attention mask, 1 for the first (drawn) positions of its last axis.
    """

    name: str
    sample_shape: tuple[int | str, ...]
    batch_dim: int
    dtype: str = "float32"
    low: float = 0.0
    high: float = 1.0
    dataset: str | None = None
    mask: str | None = None
    index: int = 0

    @property
    def field(self) -> str:
        """Where this input is declared in ``benchd.yaml`` (``inputs[1]``)."""
        return f"inputs[{self.index}]"

    def declared_shape(self) -> list[int | str]:
        """The shape as written, with ``batch`` at the batch dimension."""
        shape: list[int | str] = list(self.sample_shape)
        shape.insert(self.batch_dim, "batch")
        return shape


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
    """A parsed ``benchd.yaml`` plus the resolved artifact path and its format (found by content)."""

    folder: str
    artifact: str
    inputs: tuple[InputSpec, ...]
    preprocess: tuple[PreprocessStep, ...] = ()
    performance_sample_count: int = 256
    artifact_format: str = "export"
    pass_inputs: str = "auto"
    dims: tuple[DimSpec, ...] = ()

    @property
    def spec_path(self) -> str:
        """The ``benchd.yaml`` file, for messages."""
        return str(Path(self.folder) / SPEC_FILE)

    def dim(self, name: str) -> DimSpec:
        """The ``dims:`` entry called ``name``."""
        return next(d for d in self.dims if d.name == name)


def _int_field(r: FieldReader, key: str, default: int | None = None) -> int:
    value = r.number(key, default, ge=1, integer=True)
    if value is None:
        raise r.error(key, "is required")
    return int(value)


def _read_dim(name: str, raw: Any, r: FieldReader) -> DimSpec:
    if isinstance(raw, int) and not isinstance(raw, bool):
        if raw < 1:
            raise r.error(name, f"a fixed size must be >= 1, got {raw!r}")
        return DimSpec(name, "fixed", raw, raw)
    d = FieldReader(raw, r.child_path(name), r.source)
    dist = d.string("dist", None, DISTRIBUTIONS)
    if dist is None:
        raise d.error("dist", f"is required: one of {', '.join(DISTRIBUTIONS)} (or give a plain size)")
    if dist == "fixed":
        value = _int_field(d, "value")
        spec = DimSpec(name, dist, value, value)
    elif dist == "choice":
        values, weights = d.raw("values"), d.raw("weights", [])
        if not (isinstance(values, list) and values and all(isinstance(v, int) and v >= 1 for v in values)):
            raise d.error("values", f"expected a non-empty list of sizes >= 1, got {values!r}")
        if weights and not (
            isinstance(weights, list)
            and len(weights) == len(values)
            and all(isinstance(w, (int, float)) and w >= 0 for w in weights)
            and sum(weights) > 0
        ):
            raise d.error(
                "weights", f"expected {len(values)} non-negative numbers (one per value), got {weights!r}"
            )
        spec = DimSpec(name, dist, values=tuple(values), weights=tuple(float(w) for w in weights))
    else:
        low, high = _int_field(d, "low"), _int_field(d, "high")
        if low > high:
            raise d.error("high", f"must be >= low ({low}), got {high}")
        mean = float(d.number("mean", (low + high) / 2)) if dist == "normal" else 0.0
        std = float(d.number("std", (high - low) / 4 or 1.0, gt=0)) if dist == "normal" else 0.0
        spec = DimSpec(name, dist, low, high, mean, std)
    d.finish()
    return spec


def _read_dims(top: FieldReader) -> tuple[DimSpec, ...]:
    r = top.child("dims")
    out = []
    for name in list(r.data):
        if not isinstance(name, str) or name in BATCH_MARKERS:
            raise r.error(str(name), "dimension names must be strings other than 'batch'")
        out.append(_read_dim(name, r.raw(name), r))
    return tuple(out)


def _read_shape(r: FieldReader, shape: Any, dims: dict[str, DimSpec]) -> tuple[int, tuple[int | str, ...]]:
    if not isinstance(shape, list) or not shape:
        raise r.error("shape", f"expected a list such as [batch, 3, 224, 224], got {shape!r}")
    marks = [i for i, d in enumerate(shape) if d in BATCH_MARKERS and not isinstance(d, bool)]
    if len(marks) != 1:
        raise r.error("shape", f"mark exactly one batch dimension with 'batch' (or -1), got {shape!r}")
    batch_dim = marks[0]
    dims_out: list[int | str] = []
    for i, d in enumerate(shape):
        if i == batch_dim:
            continue
        if isinstance(d, str):
            if d not in dims:
                known = f" (declared: {', '.join(dims)})" if dims else ""
                raise r.error(
                    "shape",
                    f"{d!r} is neither a size nor a dimension declared under dims:{known}; got {shape!r}",
                )
        elif not (isinstance(d, int) and not isinstance(d, bool) and d > 0):
            raise r.error(
                "shape",
                "dimensions other than the batch must be positive integers or names from dims:, "
                f"got {shape!r}",
            )
        dims_out.append(d)
    return batch_dim, tuple(dims_out)


def _read_input(r: FieldReader, index: int, folder: Path, dims: dict[str, DimSpec]) -> InputSpec:
    name = r.string("name", None)
    if not name:
        raise r.error("name", "is required")
    shape = r.raw("shape")
    dataset = r.string("dataset", None)
    mask = r.string("mask", None)
    dtype = r.string("dtype", "int64" if mask else "float32", INPUT_DTYPES)
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
    if mask is not None and mask not in dims:
        raise r.error(
            "mask", f"names the dimension whose drawn length the mask covers; {mask!r} is not under dims:"
        )
    if dataset is not None:
        resolve_inside(folder, dataset, f"{r.path}.dataset")
    batch_dim, sample_shape = (0, ()) if shape is None else _read_shape(r, shape, dims)
    spec = InputSpec(
        name,
        sample_shape,
        batch_dim,
        dtype,
        float(value_range[0]),
        float(value_range[1]),
        dataset,
        mask,
        index,
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
    """Parse and validate ``<folder>/benchd.yaml`` and find the artifact (by content).

    Raises:
        RunError: ``artifact_not_found`` or ``invalid_model_spec`` (the message names file and field).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise RunError(f"model version folder {folder} does not exist", "artifact_not_found")
    spec_path = folder / SPEC_FILE
    data: Any = read_spec_data(folder)
    try:
        top = FieldReader(data, "", str(spec_path))
        artifact = find_artifact(folder, top.string("artifact", None))
        declared = top.string("format", None, FORMATS)
        pass_inputs = top.string("pass_inputs", "auto", PASS_INPUTS)
        dims = _read_dims(top)
        by_name = {d.name: d for d in dims}
        raw_inputs = top.raw("inputs")
        if not isinstance(raw_inputs, list) or not raw_inputs:
            raise top.error("inputs", "expected a non-empty list of inputs")
        inputs = tuple(
            _read_input(FieldReader(x, f"inputs[{i}]", str(spec_path)), i, folder, by_name)
            for i, x in enumerate(raw_inputs)
        )
        names = [i.name for i in inputs]
        if len(set(names)) != len(names):
            raise top.error("inputs", f"input names must be unique, got {names}")
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
    if declared is not None and declared != artifact.fmt:
        raise RunError(
            f"{spec_path}: format: says {declared} ({FORMAT_WORDS[declared]}), but {artifact.path.name} "
            f"holds {FORMAT_WORDS[artifact.fmt]}; correct format: or ship the artifact it names",
            "invalid_model_spec",
        )
    for inp in inputs:
        if inp.dataset and not (folder / inp.dataset).is_file():
            raise RunError(
                f"{spec_path}: inputs: dataset file {inp.dataset!r} does not exist", "invalid_model_spec"
            )
    return ModelSpec(
        str(folder), str(artifact.path), inputs, preprocess, count, artifact.fmt, pass_inputs, dims
    )
