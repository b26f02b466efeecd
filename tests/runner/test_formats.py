"""Artifacts as deployed: Hugging Face folders, AOTInductor packages; the format comes from the content."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchd.records import RunSpec
from benchd.registry import LocalFolderWatcher
from benchd.registry.version_folder import is_version_folder, sniff_format
from benchd.runner.launch import run_spec
from tests.conftest import quick
from tests.runner import builders


def spec(folder, **kw):
    base = dict(model="m", version="1", model_path=str(folder), scenarios=(quick(),), timeout_s=240)
    base.update(kw)
    return RunSpec(**base)


def tiny_bert(folder: Path) -> Path:
    """A small BERT-like classifier from transformers' config classes, random weights (no download)."""
    import torch
    import transformers

    config = transformers.BertConfig(
        vocab_size=500,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    transformers.BertForSequenceClassification(config).eval().save_pretrained(folder)
    return folder


def test_a_hugging_face_folder_runs_offline_with_keyword_inputs(tmp_path):
    folder = tiny_bert(tmp_path / "bert" / "1")
    builders.write_spec(
        folder,
        {
            "dims": {"seq": {"dist": "choice", "values": [16, 32]}},
            "inputs": [
                {"name": "input_ids", "shape": ["batch", "seq"], "dtype": "int64", "range": [0, 499]},
                {"name": "attention_mask", "shape": ["batch", "seq"], "mask": "seq"},
            ],
        },
    )
    assert sniff_format(folder) == "hf" and is_version_folder(folder)
    result = run_spec(spec(folder, batch_sizes=(2,)), tmp_path / "out")
    assert result.ok, result.error
    (r,) = result.results
    assert r.artifact_format == "hf" and {v for _, v, _ in r.drawn_dims} == {16, 32}


def test_a_hugging_face_folder_missing_a_required_input_says_which(tmp_path):
    folder = tiny_bert(tmp_path / "bert" / "1")
    builders.write_spec(folder, {"inputs": [{"name": "tokens", "shape": ["batch", 8], "dtype": "int64"}]})
    result = run_spec(spec(folder), tmp_path / "out")
    assert result.error_kind == "input_mismatch"
    assert "input_ids" in result.error and "not taken by the model: tokens" in result.error


def test_pickled_hugging_face_weights_need_permission(tmp_path):
    import torch

    folder = tiny_bert(tmp_path / "bert" / "1")
    (folder / "model.safetensors").unlink()
    torch.save({}, folder / "pytorch_model.bin")
    builders.write_spec(folder, {"inputs": [{"name": "input_ids", "shape": ["batch", 8], "dtype": "int64"}]})
    result = run_spec(spec(folder), tmp_path / "out")
    assert result.error_kind == "pickle_refused" and "safetensors" in result.error


def test_format_mismatch_is_one_sentence(tmp_path):
    folder = builders.static_mlp_version(tmp_path / "m" / "1")
    text = (folder / "benchd.yaml").read_text()
    (folder / "benchd.yaml").write_text("format: torchscript\n" + text)
    result = run_spec(spec(folder), tmp_path / "out")
    assert result.error_kind == "invalid_model_spec"
    assert "format: says torchscript (a TorchScript archive), but model.pt2 holds a torch.export program" in (
        result.error
    )


def test_registry_bench_and_worker_agree_on_what_makes_a_version(tmp_path):
    root = tmp_path / "reg"
    builders.static_mlp_version(root / "mlp" / "1", features=64)
    (root / "mlp" / "1" / "model.pt2").rename(root / "mlp" / "1" / "ranker-v1.bin")  # any name: by content
    tiny_bert(root / "bert" / "1")
    builders.write_spec(root / "bert" / "1", {"inputs": [{"name": "input_ids", "shape": ["batch", 8]}]})
    builders.write_spec(root / "empty" / "1", {"inputs": [{"name": "x", "shape": ["batch", 4]}]}, ready=False)
    (root / "empty" / "1" / "notes.txt").write_text("not a model")
    found = LocalFolderWatcher("local", root, settle_s=0).poll()
    assert sorted((v.model, v.version) for v in found) == [("bert", "1"), ("mlp", "1")]
    assert not is_version_folder(root / "empty" / "1")
    result = run_spec(spec(root / "mlp" / "1"), tmp_path / "out")
    assert result.ok, result.error
    assert result.results[0].artifact_format == "export"


@pytest.mark.slow
def test_an_aoti_package_runs_when_native_code_is_allowed(tmp_path):
    import torch

    folder = tmp_path / "aoti" / "1"
    folder.mkdir(parents=True)
    program = torch.export.export(
        builders.mlp(), (torch.randn(2, 64),), dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=64)},)
    )
    torch._inductor.aoti_compile_and_package(program, package_path=str(folder / "model.pt2"))
    builders.write_spec(folder, {"inputs": [{"name": "x", "shape": ["batch", 64]}]})
    assert sniff_format(folder / "model.pt2") == "aoti"
    assert run_spec(spec(folder), tmp_path / "no").error_kind == "native_code_refused"
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "benchd.cli", "bench", str(folder), "--allow-native-code",
         "--batch-size", "1,4", "--duration", "0.2s", "--quiet", "--out", str(out),
         "--json", str(tmp_path / "r.json")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "artifact format: aoti" in proc.stdout
    result = json.loads((tmp_path / "r.json").read_text())
    assert [(r["batch_size"], r["artifact_format"]) for r in result["results"]] == [(1, "aoti"), (4, "aoti")]
