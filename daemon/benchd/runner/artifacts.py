"""Loading model artifacts the way teams ship them; code-running formats only when allowed.

- ``export`` (``torch.export.save``): checked for pickles first (:mod:`benchd.runner.pt2_safety`); timed
  through its graph with inputs flattened once per prepared batch (the program's own Python-level input
  flattening and shape guards run once per batch before timing, not in every query).
- ``aoti`` (``aoti_compile_and_package``): compiled native code, so refused unless ``allow_native_code``;
  timed through its runner with pre-flattened inputs, as a C++ server calls it.
- ``torchscript`` (``torch.jit.save``): code-free for Python.
- ``hf``: a Hugging Face folder, loaded with ``transformers`` from the folder only (``local_files_only``,
  ``HF_HUB_OFFLINE=1``, no remote code); safetensors weights, pickled ``pytorch_model.bin`` only when
  pickles are allowed.
- ``pickle`` (``torch.save(model)``): executes whatever its pickle says, so refused unless
  ``allow_pickle``.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from benchd.errors import RunError
from benchd.registry.version_folder import FORMAT_WORDS, sniff_format
from benchd.runner.pt2_safety import check_pt2_pickles

PICKLE_REFUSED = (
    "{path} is a pickled model (torch.save(model)): loading it runs arbitrary code from the file. "
    "Export it with torch.export (.pt2) or TorchScript instead, or set allow_pickle: true for this "
    "registry if you trust where it comes from."
)
NATIVE_REFUSED = (
    "{path} is an AOTInductor package: loading it runs the compiled native code it holds. Set "
    "allow_native_code: true for this registry (benchd bench --allow-native-code) if you trust where it "
    "comes from, or ship the torch.export program (torch.export.save) instead."
)


@dataclass
class LoadedArtifact:
    """A loaded artifact and how a timed query calls it.

    Attributes:
        fmt: the format (``export``, ``aoti``, ``torchscript``, ``hf``, ``pickle``).
        model: the model as a user calls it (``model(*args, **kwargs)``).
        path: the artifact file or folder.
        flat_call: for ``export``/``aoti``: a function taking the flattened input tensors (in the
            program's input order) that the timed query calls instead of ``model``.
        in_spec: the program's input tree spec (``export``/``aoti``), to flatten prepared inputs.
        program: the ``ExportedProgram`` (``export`` only), for its signature and shape constraints.
        guards: the program's shape guards over flattened inputs (``export``), run once per batch.
        note: how the timed call differs from a plain ``model(...)`` call, shown with the result.
        leading_args: what ``flat_call`` takes before the flattened inputs (a program's weights).
    """

    fmt: str
    model: Any
    path: Path
    flat_call: Callable[..., Any] | None = None
    in_spec: Any = None
    program: Any = None
    guards: Callable[..., Any] | None = None
    note: str = ""
    leading_args: tuple[Any, ...] = ()


def artifact_format(path: Path) -> str:
    """Return the format of ``path`` by looking inside it (not at its name).

    Raises:
        RunError: ``corrupt_artifact`` when it is none of the known formats.
    """
    fmt = sniff_format(path)
    if fmt is None:
        raise RunError(
            f"{path} is not a model artifact (expected {', '.join(FORMAT_WORDS.values())})",
            "corrupt_artifact",
        )
    return fmt


def _first_line(e: BaseException) -> str:
    text = str(e).split("\nException raised from", 1)[0].strip()
    return f"{type(e).__name__}: {text}"


def _flat_graph(module: torch.fx.GraphModule) -> tuple[torch.fx.GraphModule, Callable[..., Any] | None]:
    """A copy of an unlifted program's graph that takes flat inputs, without its per-call guards."""
    graph = copy.deepcopy(module.graph)
    graph._codegen = torch.fx.graph.CodeGen()  # no pytree flatten/unflatten around the graph
    for node in list(graph.nodes):
        if node.op == "call_module" and node.target == "_guards_fn":
            graph.erase_node(node)
    return torch.fx.GraphModule(module, graph), getattr(module, "_guards_fn", None)  # shares the weights


def _lifted_call(
    program: Any, device: torch.device, dtype: torch.dtype
) -> tuple[Callable[..., Any], tuple[Any, ...]] | None:
    """The program's own graph (weights as leading arguments) and those weights, when it can be used.

    That graph is what the program runs, minus the unlifted module's per-call input flattening, guards
    and attribute lookups. Programs that mutate state, or whose user inputs do not come last, keep the
    unlifted path.
    """
    sig = program.graph_signature
    if getattr(sig, "buffers_to_mutate", None) or getattr(sig, "user_inputs_to_mutate", None):
        return None
    kinds = [spec.kind.name for spec in sig.input_specs]
    users = kinds.count("USER_INPUT")
    if kinds[len(kinds) - users :] != ["USER_INPUT"] * users:
        return None
    leading = []
    for spec in sig.input_specs[: len(kinds) - users]:
        if spec.kind.name not in ("PARAMETER", "BUFFER", "CONSTANT_TENSOR"):
            return None
        value = program.state_dict.get(spec.target, program.constants.get(spec.target))
        if not isinstance(value, torch.Tensor):
            return None
        cast = dtype if value.is_floating_point() else value.dtype
        leading.append(value.detach().to(device=device, dtype=cast))
    return program.graph_module.forward, tuple(leading)


def _load_export(path: Path, device: torch.device, dtype: torch.dtype) -> LoadedArtifact:
    program = torch.export.load(str(path))
    module = program.module()
    if device.type != "cpu" or dtype != torch.float32:
        module = module.to(device=device, dtype=dtype)
    guards = getattr(module, "_guards_fn", None)
    lifted = _lifted_call(program, device, dtype)
    if lifted is not None:
        call, leading = lifted
        note = (
            "the program's graph called with its weights and pre-flattened inputs; input flattening and "
            "shape guards checked once per prepared batch, before timing"
        )
    else:
        flat, _ = _flat_graph(module)
        call, leading = flat.forward, ()
        note = "graph called with pre-flattened inputs; shape guards checked once per prepared batch"
    return LoadedArtifact(
        "export",
        module,
        path,
        flat_call=call,
        in_spec=program.call_spec.in_spec,
        program=program,
        guards=guards,
        note=note,
        leading_args=leading,
    )


def _load_aoti(path: Path, device: torch.device, dtype: torch.dtype) -> LoadedArtifact:
    import torch._inductor  # noqa: PLC0415 - only AOTInductor packages need it

    loader_cls = torch._C._aoti.AOTIModelPackageLoader
    # a static method torch binds in C++ but its stub (torch/_C/_aoti.pyi, 2.13) does not declare
    meta = loader_cls.load_metadata_from_package(str(path), "model")  # type: ignore[attr-defined]
    built_for = str(meta.get("AOTI_DEVICE_KEY", "cpu"))
    if built_for != device.type:
        raise RunError(
            f"{path} was compiled by AOTInductor for {built_for}; it cannot run on {device}. Compile it "
            f"with the model and example inputs on {device.type}, or run it on a {built_for} device",
            "device_unavailable",
        )
    if dtype != torch.float32:
        raise RunError(
            f"{path} is an AOTInductor package compiled for its own dtypes; it cannot be cast to "
            f"{dtype}: run it with dtype float32 or compile a package in {dtype}",
            "invalid_model_spec",
        )
    index = device.index if device.type == "cuda" and device.index is not None else -1
    compiled = torch._inductor.aoti_load_package(str(path), device_index=index)
    from torch.utils import _pytree as pytree  # noqa: PLC0415

    in_spec = pytree.treespec_loads(compiled.loader.get_call_spec()[0])
    run = compiled.loader.run
    return LoadedArtifact(
        "aoti",
        compiled,
        path,
        flat_call=lambda *flat: run(list(flat)),
        in_spec=in_spec,
        note="compiled runner called with pre-flattened inputs, as a C++ server calls it",
    )


def _load_hf(path: Path, allow_pickle: bool) -> Any:
    # Never the hub: these must be set before transformers (and huggingface_hub) are imported.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        import transformers  # noqa: PLC0415 - optional dependency, only for Hugging Face folders
    except ImportError as e:
        raise RunError(
            f"{path} is a Hugging Face model folder, and loading it needs transformers: "
            "pip install 'benchd[hf]'",
            "unsupported_artifact",
        ) from e
    safetensors = any(path.glob("*.safetensors"))
    if not safetensors and not allow_pickle:
        raise RunError(
            f"{path} holds pickled weights (pytorch_model*.bin) and no *.safetensors: loading them runs "
            "code from the file. Save the model with save_pretrained(safe_serialization=True), or set "
            "allow_pickle: true for this registry if you trust where it comes from.",
            "pickle_refused",
        )
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    archs = config.get("architectures") or []
    cls = getattr(transformers, archs[0], None) if archs and isinstance(archs[0], str) else None
    cls = cls or transformers.AutoModel
    return cls.from_pretrained(
        str(path), local_files_only=True, use_safetensors=safetensors, trust_remote_code=False
    )


def load_artifact(
    path: str | Path,
    *,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    allow_pickle: bool = False,
    allow_native_code: bool = False,
) -> LoadedArtifact:
    """Load an artifact onto ``device`` in ``dtype``; the model is in eval mode.

    Raises:
        RunError: ``artifact_not_found``, ``pickle_refused``, ``native_code_refused``,
            ``unsupported_artifact``, ``device_unavailable`` or ``corrupt_artifact``.
    """
    path = Path(path)
    if not path.exists():
        raise RunError(f"artifact {path} does not exist", "artifact_not_found")
    fmt = artifact_format(path)
    if fmt == "pickle" and not allow_pickle:
        raise RunError(PICKLE_REFUSED.format(path=path), "pickle_refused")
    if fmt == "aoti" and not allow_native_code:
        raise RunError(NATIVE_REFUSED.format(path=path), "native_code_refused")
    if fmt in ("export", "aoti"):
        check_pt2_pickles(path, allow_pickle=allow_pickle)  # before torch opens the archive
    try:
        if fmt == "export":
            return _load_export(path, device, dtype)
        if fmt == "aoti":
            return _load_aoti(path, device, dtype)
        if fmt == "torchscript":
            model = torch.jit.load(str(path), map_location="cpu")
        elif fmt == "hf":
            model = _load_hf(path, allow_pickle)
        else:
            model = torch.load(str(path), map_location="cpu", weights_only=False)
    except RunError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure to deserialise is a corrupt artifact
        raise RunError(f"cannot load {path} ({fmt}): {_first_line(e)}", "corrupt_artifact") from e
    if not callable(model):
        raise RunError(f"{path} holds a {type(model).__name__}, not a callable model", "corrupt_artifact")
    if hasattr(model, "eval"):
        model.eval()
    if hasattr(model, "to") and (device.type != "cpu" or dtype != torch.float32):
        try:
            model = model.to(device=device, dtype=dtype)
        except Exception as e:  # noqa: BLE001
            raise RunError(f"cannot move {path} to {device}/{dtype}: {_first_line(e)}", "model_error") from e
    return LoadedArtifact(fmt, model, path)
