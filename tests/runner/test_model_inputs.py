"""Real models as teams export them: keyword and dict inputs, drawn sequence lengths, static batches."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from benchd.records import RunSpec
from benchd.runner.launch import run_spec
from tests.conftest import quick
from tests.runner import builders


def spec(folder, **kw):
    base = dict(
        model=folder.parent.name,
        version=folder.name,
        model_path=str(folder),
        scenarios=(quick(),),
        timeout_s=120,
    )
    base.update(kw)
    return RunSpec(**base)


def bench(*args):
    return subprocess.run(
        [sys.executable, "-m", "benchd.cli", "bench", *args], capture_output=True, text=True, timeout=300
    )


def test_a_keyword_input_program_runs_with_its_inputs_by_name(tmp_path):
    folder = builders.keyword_version(tmp_path / "kw" / "1")
    result = run_spec(spec(folder), tmp_path / "out")
    assert result.ok, result.error
    (r,) = result.results
    assert r.artifact_format == "export" and r.queries > 0
    assert "pre-flattened" in (r.artifact_note or "")


def test_a_dict_input_program_gets_one_dict(tmp_path):
    folder = builders.dict_version(tmp_path / "dict" / "1")
    result = run_spec(spec(folder, batch_sizes=(1, 3)), tmp_path / "out")
    assert result.ok, result.error
    assert [r.batch_size for r in result.results] == [1, 3]


def test_eager_pickle_with_a_dict_argument_and_explicit_pass_inputs(tmp_path):
    import torch

    folder = tmp_path / "eager" / "1"
    folder.mkdir(parents=True)
    torch.save(builders.DictModel(), folder / "model.pt")
    builders.write_spec(
        folder,
        {
            "pass_inputs": "dict",
            "inputs": [{"name": "dense", "shape": ["batch", 8]}, {"name": "scale", "shape": ["batch", 1]}],
        },
    )
    result = run_spec(spec(folder, allow_pickle=True), tmp_path / "out")
    assert result.ok, result.error
    assert result.results[0].artifact_format == "pickle"


def test_a_missing_input_names_expected_and_declared_with_shapes(tmp_path):
    import torch

    folder = tmp_path / "two" / "1"
    builders.export_to(folder, builders.TwoInputs(), (torch.randn(2, 16), torch.randn(2, 8)))
    builders.write_spec(folder, {"inputs": [{"name": "x", "shape": ["batch", 16]}]})
    result = run_spec(spec(folder), tmp_path / "out")
    assert result.error_kind == "input_mismatch"
    # names the expected inputs (with dtype and shape) and the declared ones, and what to add
    assert "x: float32[2, 16] (positional 0); y: float32[2, 8] (positional 1)" in result.error
    assert "declares x: float32[batch, 16]" in result.error
    assert "missing: y" in result.error and "TreeSpec" not in result.error


def test_pass_inputs_that_contradict_the_program_say_so(tmp_path):
    folder = builders.keyword_version(tmp_path / "kw" / "1", extra={"pass_inputs": "positional"})
    result = run_spec(spec(folder), tmp_path / "out")
    assert result.error_kind == "input_mismatch"
    assert "pass_inputs: positional, but model.pt2" in result.error and "takes keyword inputs" in result.error


def _seq_spec(mask_shape):
    return {
        "dims": {"seq": {"dist": "choice", "values": [8, 32, 64], "weights": [5, 3, 2]}},
        "inputs": [
            {"name": "input_ids", "shape": ["batch", "seq"], "dtype": "int64", "range": [0, 99]},
            {"name": "attention_mask", "shape": mask_shape, "mask": "seq"},
        ],
    }


def test_drawn_sequence_lengths_and_masks_show_in_the_result(tmp_path):
    folder = builders.keyword_version(tmp_path / "seq" / "1", extra=_seq_spec(["batch", "seq"]))
    result = run_spec(spec(folder, scenarios=(quick(min_query_count=200),)), tmp_path / "out")
    assert result.ok, result.error
    (r,) = result.results
    seen = {value: count for dim, value, count in r.drawn_dims if dim == "seq"}
    assert set(seen) == {8, 32, 64}  # every value drawn, the likeliest most often
    assert sum(seen.values()) == r.queries and seen[8] > seen[64]


def test_a_padded_mask_against_a_shared_export_symbol_is_refused_before_timing(tmp_path):
    # ids of the drawn length and a mask padded to 64 columns: the program ties both to one 'seq' size
    folder = builders.keyword_version(tmp_path / "seq" / "1", extra=_seq_spec(["batch", 64]))
    result = run_spec(spec(folder), tmp_path / "out")
    assert result.error_kind == "input_mismatch", result.error
    assert "input 'attention_mask' dimension 1 must equal input 'input_ids' dimension 1" in result.error
    assert "inputs[1].shape and inputs[0].shape" in result.error


def test_a_distribution_outside_the_export_range_names_dims_and_the_fix(tmp_path):
    folder = builders.keyword_version(
        tmp_path / "seq" / "1",
        extra={
            "dims": {"seq": {"dist": "uniform", "low": 16, "high": 512}},
            "inputs": [
                {"name": "input_ids", "shape": ["batch", "seq"], "dtype": "int64", "range": [0, 99]},
                {"name": "attention_mask", "shape": ["batch", "seq"], "mask": "seq"},
            ],
        },
    )
    result = run_spec(spec(folder), tmp_path / "out")
    assert result.error_kind == "input_mismatch"
    assert "dims.seq draws uniform 16..512" in result.error and "takes only 2..128" in result.error
    assert "dynamic_shapes=" in result.error


def test_a_wrong_feature_size_points_at_the_benchd_yaml_line(tmp_path):
    folder = builders.static_mlp_version(tmp_path / "mlp" / "1")
    (folder / "benchd.yaml").write_text("inputs: [{name: x, shape: [batch, 32]}]\n")
    result = run_spec(spec(folder), tmp_path / "out")
    assert result.error_kind == "input_mismatch"
    assert "inputs[0].shape: input 'x' dimension 1 is 32" in result.error
    assert "takes a fixed 64 there; set inputs[0].shape to [batch, 64]" in result.error
    assert "Guard failed" not in result.error


def test_static_batch_export_reports_batch_1_and_explains_batch_8(tmp_path):
    folder = builders.static_mlp_version(tmp_path / "mlp" / "1")
    out = tmp_path / "out"
    proc = bench(
        str(folder), "--batch-size", "1,8", "--duration", "0.2s", "--quiet", "--out", str(out),
        "--json", str(tmp_path / "r.json"),
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr  # not everything asked for ran
    assert "model mlp version 1" in proc.stdout
    assert "single_stream  1 " in proc.stdout  # batch 1 ran and printed
    assert (
        "bs=8: NOT RUN: batch size 8: model.pt2 (a torch.export program) was exported with a "
        "static batch of 1" in proc.stdout
    )
    assert "export with dynamic_shapes={'x': {0: torch.export.Dim('batch')}}" in proc.stdout
    result = json.loads((tmp_path / "r.json").read_text())
    assert [r["batch_size"] for r in result["results"]] == [1]
    assert result["skipped"][0][:2] == [8, "single_stream"] and result["outcome"] == "invalid"


def test_bench_names_model_and_version_from_the_folder_or_flags(tmp_path):
    folder = builders.static_mlp_version(tmp_path / "reg" / "mlp" / "1")
    r = tmp_path / "r.json"
    proc = bench(
        str(folder / "model.pt2"),
        "--duration",
        "0.2s",
        "--quiet",
        "--out",
        str(tmp_path / "o"),
        "--json",
        str(r),
    )
    assert proc.returncode == 0, proc.stderr
    assert (json.loads(r.read_text())["model"], json.loads(r.read_text())["version"]) == ("mlp", "1")
    proc = bench(
        str(folder), "--model", "ranker", "--version", "7", "--duration", "0.2s", "--quiet",
        "--out", str(tmp_path / "o2"), "--json", str(r),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (json.loads(r.read_text())["model"], json.loads(r.read_text())["version"]) == ("ranker", "7")


@pytest.mark.parametrize("fmt", ["torchscript"])
def test_torchscript_inputs_by_name_from_its_schema(tmp_path, fmt):
    import torch

    folder = tmp_path / "ts" / "1"
    folder.mkdir(parents=True)
    torch.jit.save(torch.jit.script(builders.TwoInputs()), str(folder / "model.ts"))
    # declared in the other order: the schema's names decide where each goes
    builders.write_spec(
        folder, {"inputs": [{"name": "y", "shape": ["batch", 8]}, {"name": "x", "shape": ["batch", 16]}]}
    )
    result = run_spec(spec(folder), tmp_path / "out")
    assert result.ok, result.error
    assert result.results[0].artifact_format == fmt
