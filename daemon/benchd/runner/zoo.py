"""Small real torch models for the demo, the tests and ``bench/``, written as model version folders.

``write_version(folder, kind, ...)`` exports a model (``torch.export`` .pt2 by default) and writes the
``benchd.yaml`` that describes its inputs. Kinds: ``mlp``, ``cnn``, ``transformer`` (real models with a
``width`` knob that scales compute), ``sleep`` (a model whose forward sleeps a known time, for checking
the harness's bias) and ``faulty`` (raises, segfaults, hangs or runs out of memory on purpose). The last
two cannot be exported and are pickled, so they load only with ``allow_pickle``.

Run as ``python -m benchd.runner.zoo FOLDER KIND [--width W] [--sleep-s S]`` (the demo does, so the
daemon process itself never imports torch).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

KINDS = ("mlp", "cnn", "transformer", "sleep", "faulty")


class MLP(nn.Module):
    """A plain MLP on 64 features; ``width`` scales the hidden layers (compute grows ~ width^2)."""

    def __init__(self, width: float = 1.0, depth: int = 3, features: int = 64) -> None:
        super().__init__()
        hidden = max(8, int(256 * width))
        layers: list[nn.Module] = [nn.Linear(features, hidden), nn.ReLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(hidden, hidden), nn.ReLU()]
        layers.append(nn.Linear(hidden, 10))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits for a batch of feature vectors."""
        return self.net(x)


class CNN(nn.Module):
    """A small image classifier on 3x32x32 inputs; ``width`` scales the channels."""

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        c = max(4, int(16 * width))
        self.features = nn.Sequential(
            nn.Conv2d(3, c, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c, 2 * c, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * c, 4 * c, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Linear(4 * c, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits for a batch of images."""
        return self.head(self.features(x).flatten(1))


class TinyTransformer(nn.Module):
    """A two-layer transformer encoder over 32 tokens of a 1000-word vocabulary."""

    def __init__(self, width: float = 1.0, layers: int = 2) -> None:
        super().__init__()
        d = max(16, int(64 * width) // 4 * 4)
        self.embed = nn.Embedding(1000, d)
        layer = nn.TransformerEncoderLayer(d, 4, dim_feedforward=2 * d, batch_first=True, dropout=0.0)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, 2)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Two-class logits per sequence (mean-pooled)."""
        return self.head(self.encoder(self.embed(tokens)).mean(dim=1))


class SleepModel(nn.Module):
    """Sleeps ``sleep_s`` per call and measures it itself, so the harness's bias can be computed."""

    def __init__(self, sleep_s: float = 0.001) -> None:
        super().__init__()
        self.sleep_s = sleep_s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x`` after sleeping."""
        time.sleep(self.sleep_s)
        return x


class FaultyModel(nn.Module):
    """Fails on purpose: ``raise``, ``segfault``, ``hang`` or ``oom``; ``after`` calls succeed first."""

    def __init__(self, mode: str = "raise", after: int = 0) -> None:
        super().__init__()
        self.mode = mode
        self.after = after
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x`` for the first ``after`` calls, then fail as configured."""
        self.calls += 1
        if self.calls <= self.after:
            return x
        if self.mode == "segfault":
            os.kill(os.getpid(), signal.SIGSEGV)
            ctypes.string_at(0)
        if self.mode == "hang":
            while True:
                time.sleep(1)
        if self.mode == "oom":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB (simulated)")
        raise ValueError("deliberate failure in FaultyModel.forward")


_INPUTS: dict[str, list[dict[str, Any]]] = {
    "mlp": [{"name": "x", "shape": ["batch", 64], "dtype": "float32", "range": [-1, 1]}],
    "cnn": [{"name": "image", "shape": ["batch", 3, 32, 32], "dtype": "float32", "range": [0, 1]}],
    "transformer": [{"name": "tokens", "shape": ["batch", 32], "dtype": "int64", "range": [0, 999]}],
    "sleep": [{"name": "x", "shape": ["batch", 4], "dtype": "float32"}],
    "faulty": [{"name": "x", "shape": ["batch", 4], "dtype": "float32"}],
}


def build(
    kind: str, width: float = 1.0, sleep_s: float = 0.001, mode: str = "raise", after: int = 0
) -> nn.Module:
    """Build a model of ``kind`` with fixed (seeded) random weights, in eval mode."""
    torch.manual_seed(0)
    model: nn.Module
    if kind == "mlp":
        model = MLP(width)
    elif kind == "cnn":
        model = CNN(width)
    elif kind == "transformer":
        model = TinyTransformer(width)
    elif kind == "sleep":
        model = SleepModel(sleep_s)
    elif kind == "faulty":
        model = FaultyModel(mode, after)
    else:
        raise ValueError(f"unknown model kind {kind!r}; known: {', '.join(KINDS)}")
    return model.eval()


def example_inputs(kind: str, batch: int = 2) -> tuple[torch.Tensor, ...]:
    """Example inputs matching the kind's ``benchd.yaml``."""
    spec = _INPUTS[kind][0]
    shape = [batch if d == "batch" else d for d in spec["shape"]]
    if spec["dtype"] == "int64":
        return (torch.randint(0, 1000, shape),)
    return (torch.rand(shape),)


def write_version(
    folder: str | Path,
    kind: str,
    *,
    width: float = 1.0,
    sleep_s: float = 0.001,
    mode: str = "raise",
    after: int = 0,
    fmt: str | None = None,
    extra_spec: dict[str, Any] | None = None,
) -> Path:
    """Write a complete model version folder (artifact + ``benchd.yaml`` + ``READY``) and return it.

    ``fmt`` is ``export`` (default for real models), ``torchscript`` or ``pickle`` (default, and the only
    choice, for ``sleep`` and ``faulty``).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = build(kind, width, sleep_s, mode, after)
    fmt = fmt or ("pickle" if kind in ("sleep", "faulty") else "export")
    if fmt == "export":
        program = torch.export.export(
            model, example_inputs(kind), dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},)
        )
        artifact = folder / "model.pt2"
        torch.export.save(program, str(artifact))
    elif fmt == "torchscript":
        artifact = folder / "model.ts"
        torch.jit.save(torch.jit.trace(model, example_inputs(kind)), str(artifact))
    else:
        artifact = folder / "model.pt"
        torch.save(model, str(artifact))
    spec = {"artifact": artifact.name, "inputs": _INPUTS[kind], **(extra_spec or {})}
    (folder / "benchd.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    (folder / "READY").write_text("")
    return folder


def main(argv: list[str] | None = None) -> int:
    """Command line: write one model version folder."""
    parser = argparse.ArgumentParser(prog="python -m benchd.runner.zoo", description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--sleep-s", type=float, default=0.001)
    parser.add_argument("--mode", default="raise")
    parser.add_argument("--format", dest="fmt", choices=("export", "torchscript", "pickle"))
    args = parser.parse_args(argv)
    # Import ourselves by name: pickled models must reference benchd.runner.zoo.X, not __main__.X.
    from benchd.runner import zoo

    zoo.write_version(
        args.folder, args.kind, width=args.width, sleep_s=args.sleep_s, mode=args.mode, fmt=args.fmt
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
