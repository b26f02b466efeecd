"""Load one model version and build its timed queries: the one path both workers take.

``load_version`` reads ``benchd.yaml``, loads the artifact (refusing code-running formats unless allowed),
reads the artifact's signature, maps the declared inputs onto it, and checks the declared shapes against
what an exported program accepts, all before anything is timed. ``LoadedVersion.query(size)`` then cuts
the seeded sample set into batches, builds each batch's call (arguments, keywords, dicts, flattened
inputs) once, runs the program's shape guards on every batch once, and returns the query function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from benchd.errors import RunError
from benchd.records import RunSpec
from benchd.registry.version_folder import FORMAT_WORDS
from benchd.runner.artifacts import LoadedArtifact, load_artifact
from benchd.runner.inputs import make_batches, make_preprocess, sample_set, torch_dtype
from benchd.runner.modelspec import ModelSpec, read_model_spec
from benchd.runner.shapes import BatchLimits, check_shapes, explain_guard_error
from benchd.runner.signature import CallPlan, plan_call, read_signature
from benchd.runner.timing import DeviceTimer, PreparedCall, QueryFn, make_query


@dataclass
class VersionQuery:
    """A query function for one query size, and the ``dims:`` values each prepared batch drew."""

    query: QueryFn
    draws: list[dict[str, int]]


@dataclass
class LoadedVersion:
    """A model version ready to benchmark on ``device``."""

    model_spec: ModelSpec
    artifact: LoadedArtifact
    plan: CallPlan
    limits: BatchLimits
    device: torch.device
    float_dtype: torch.dtype
    samples: dict[str, torch.Tensor]
    seed: int
    compiled: Any = None

    @property
    def fmt(self) -> str:
        """The artifact's format (``export``, ``aoti``, ``torchscript``, ``hf``, ``pickle``)."""
        return self.artifact.fmt

    def skip_reason(self, size: int) -> str | None:
        """Why queries of ``size`` samples cannot run (and how to fix it), or None when they can."""
        return self.limits.reason(size)

    def query(self, size: int, timer: DeviceTimer | None = None) -> VersionQuery:
        """Prepare batches of ``size`` samples and return the query function over them.

        Raises:
            RunError: ``input_mismatch`` when the program's shape guards reject a prepared batch.
        """
        batches, draws = make_batches(
            self.model_spec,
            self.samples,
            size,
            seed=self.seed,
            float_dtype=self.float_dtype,
            pin_memory=self.device.type == "cuda",
        )
        calls = [self._prepare(b, size) for b in batches]
        preprocess = (
            make_preprocess(self.model_spec.preprocess, self.device) if self.model_spec.preprocess else None
        )
        call = self.compiled or self.artifact.flat_call or self.artifact.model
        return VersionQuery(make_query(call, calls, self.device, preprocess, timer), draws)

    def _prepare(self, named: dict[str, torch.Tensor], size: int) -> PreparedCall:
        art = self.artifact
        if art.flat_call is None:
            names = list(named)
            args, kwargs = self.plan.build(named)

            def rebuild(ts: Any, names: list[str] = names) -> tuple[tuple[Any, ...], dict[str, Any]]:
                return self.plan.build(dict(zip(names, ts, strict=True)))

            return PreparedCall(tuple(named.values()), args, kwargs, rebuild)
        flat = tuple(named[name] for _, name in self.plan.bound)  # the program's flat input order
        if art.guards is not None:
            try:
                art.guards(*flat)
            except Exception as e:  # noqa: BLE001 - torch raises plain AssertionError/RuntimeError
                what = f"{art.path.name} ({FORMAT_WORDS[art.fmt]})"
                raise explain_guard_error(e, self.model_spec, what, size) or RunError(
                    f"{what} rejected a prepared batch of {size}: {type(e).__name__}: {e}", "input_mismatch"
                ) from e
        lead = art.leading_args
        return PreparedCall(flat, (*lead, *flat), {}, lambda ts: ((*lead, *ts), {}))


def load_version(spec: RunSpec, device: torch.device, seed: int | None = None) -> LoadedVersion:
    """Load ``spec``'s version onto ``device`` and check its inputs; nothing is timed yet.

    Raises:
        RunError: the spec, artifact or inputs are wrong (typed kinds, messages name file and field).
    """
    model_spec = read_model_spec(spec.model_path)
    dtype = torch_dtype(spec.dtype)
    artifact = load_artifact(
        model_spec.artifact,
        device=device,
        dtype=dtype,
        allow_pickle=spec.allow_pickle,
        allow_native_code=getattr(spec, "allow_native_code", False),
    )
    what = f"{artifact.path.name} ({FORMAT_WORDS[artifact.fmt]})"
    plan = plan_call(read_signature(artifact), model_spec, what)
    limits = check_shapes(plan, model_spec, what)
    compiled = None
    if spec.compile and artifact.fmt != "aoti":  # an AOTInductor package is compiled already
        compiled = torch.compile(artifact.flat_call or artifact.model)
    seed = spec.seed if seed is None else seed
    samples = sample_set(model_spec, seed)
    return LoadedVersion(model_spec, artifact, plan, limits, device, dtype, samples, seed, compiled)
