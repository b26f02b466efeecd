"""Version folders of real models the way teams ship them, built in the test process (torch on the CPU)."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

Dim = torch.export.Dim


class KeywordModel(nn.Module):
    """A Hugging Face-style encoder head taking ``input_ids`` and ``attention_mask`` by keyword."""

    def __init__(self, vocab: int = 100, width: int = 16) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.head = nn.Linear(width, 2)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.unsqueeze(-1).to(torch.float32)
        pooled = (self.embed(input_ids) * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.head(pooled)


class DictModel(nn.Module):
    """A model taking one dict of tensors (``features["dense"]``, ``features["scale"]``)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(8, 4)

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.lin(features["dense"]) * features["scale"]


class TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(16, 4)
        self.b = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.a(x) + self.b(y)


def mlp(features: int = 64) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(features, 32), nn.ReLU(), nn.Linear(32, 10)).eval()


def write_spec(folder: Path, spec: dict[str, Any], ready: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "benchd.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    if ready:
        (folder / "READY").write_text("")
    return folder


def export_to(
    folder: Path, model: nn.Module, args: tuple, kwargs: dict | None = None, dynamic=None, name="model.pt2"
):
    folder.mkdir(parents=True, exist_ok=True)
    program = torch.export.export(model.eval(), args, kwargs or {}, dynamic_shapes=dynamic)
    torch.export.save(program, str(folder / name))
    return program


def keyword_version(folder: Path, extra: dict[str, Any] | None = None) -> Path:
    torch.manual_seed(0)
    batch, seq = Dim("batch", min=1, max=64), Dim("seq", min=2, max=128)
    ids, mask = torch.randint(0, 100, (2, 16)), torch.ones(2, 16, dtype=torch.int64)
    export_to(
        folder,
        KeywordModel(),
        (),
        {"input_ids": ids, "attention_mask": mask},
        {"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}},
    )
    spec = {
        "inputs": [
            {"name": "input_ids", "shape": ["batch", 16], "dtype": "int64", "range": [0, 99]},
            {"name": "attention_mask", "shape": ["batch", 16], "dtype": "int64", "range": [1, 1]},
        ],
        **(extra or {}),
    }
    return write_spec(folder, spec)


def dict_version(folder: Path) -> Path:
    torch.manual_seed(0)
    batch = Dim("batch", min=1, max=64)
    example = {"dense": torch.randn(2, 8), "scale": torch.rand(2, 1)}
    export_to(folder, DictModel(), (example,), dynamic=({"dense": {0: batch}, "scale": {0: batch}},))
    spec = {
        "inputs": [
            {"name": "dense", "shape": ["batch", 8]},
            {"name": "scale", "shape": ["batch", 1]},
        ]
    }
    return write_spec(folder, spec)


def static_mlp_version(folder: Path, features: int = 64) -> Path:
    """An MLP exported with the default static batch of 1 (no dynamic_shapes)."""
    export_to(folder, mlp(features), (torch.randn(1, features),))
    return write_spec(folder, {"inputs": [{"name": "x", "shape": ["batch", features]}]})


def pickled_weight_pt2(source: Path, target: Path, marker: Path) -> None:
    """Rewrite ``source`` (a real torch.export archive) so its first weight is 'pickled' with a payload.

    The payload writes ``marker`` when unpickled and returns a real Parameter, so a loader that unpickles
    it even finishes the run.
    """
    with zipfile.ZipFile(source) as z:
        entries = {info.filename: z.read(info.filename) for info in z.infolist()}
    config_name = next(n for n in entries if n.endswith("model_weights_config.json"))
    config = json.loads(entries[config_name])
    fqn, meta = next(iter(config["config"].items()))
    meta["use_pickle"] = True
    entries[config_name] = json.dumps(config).encode()
    weight_name = f"{config_name.rsplit('/', 1)[0]}/{meta['path_name']}"
    shape = [s["as_int"] for s in meta["tensor_meta"]["sizes"]]
    code = (
        f"open({str(marker)!r}, 'w').write('pwned'); "
        f"import torch; __import__('builtins').RESULT = torch.nn.Parameter(torch.zeros({shape}))"
    )
    entries[weight_name] = _payload(code)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as out:
        for name, data in entries.items():
            out.writestr(name, data)


class _Exec:
    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):  # runs on unpickling: exec(code), then eval the Parameter it left behind
        return (eval, (f"(exec({self.code!r}), __import__('builtins').RESULT)[1]",))


def _payload(code: str) -> bytes:
    """A torch.save archive (as the pt2 writer stores pickled weights) whose data.pkl runs ``code``."""
    template = io.BytesIO()
    torch.save(torch.zeros(1), template)
    with zipfile.ZipFile(io.BytesIO(template.getvalue())) as z:
        entries = {n: z.read(n) for n in z.namelist() if "/data/" not in n}
    pkl = next(n for n in entries if n.endswith("data.pkl"))
    entries[pkl] = pickle.dumps(_Exec(code), protocol=2)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return out.getvalue()
