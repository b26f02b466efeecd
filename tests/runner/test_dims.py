"""Dimensions drawn per query: distributions, seeding, counting, and how benchd.yaml declares them."""

from __future__ import annotations

import pytest

from benchd.errors import RunError
from benchd.runner.dims import DimSpec, count_draws, draw_all
from benchd.runner.modelspec import read_model_spec
from tests.runner.test_modelspec import write


def test_each_distribution_stays_in_its_support_and_is_seeded():
    dims = [
        DimSpec("fixed", "fixed", 7, 7),
        DimSpec("u", "uniform", 16, 20),
        DimSpec("n", "normal", 8, 128, mean=64, std=200),
        DimSpec("c", "choice", values=(32, 64, 128), weights=(0.0, 1.0, 3.0)),
    ]
    draws = draw_all(dims, 400, seed=3)
    assert draws == draw_all(dims, 400, seed=3) and draws != draw_all(dims, 400, seed=4)
    assert {d["fixed"] for d in draws} == {7}
    assert {d["u"] for d in draws} == {16, 17, 18, 19, 20}  # both ends included
    assert min(d["n"] for d in draws) == 8 and max(d["n"] for d in draws) == 128  # clipped
    c = [d["c"] for d in draws]
    assert 32 not in c and c.count(128) > 2 * c.count(64)  # weights respected


def test_counts_follow_the_query_index():
    draws = [{"seq": 8}, {"seq": 16}, {"seq": 8}]
    # 7 queries over 3 batches: batches 0 and 1 run 3 and 2... i % 3 -> 0,1,2,0,1,2,0
    assert count_draws(draws, 7) == (("seq", 8, 5), ("seq", 16, 2))
    assert count_draws([{}], 10) == ()


X = [{"name": "x", "shape": ["batch", 4]}]


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"dims": {"seq": {"dist": "poisson"}}, "inputs": X}, "dims.seq.dist"),
        (
            {"dims": {"seq": {"dist": "uniform", "low": 9, "high": 3}}, "inputs": X},
            "dims.seq.high: must be >= low",
        ),
        (
            {"dims": {"seq": {"dist": "choice", "values": [8, 16], "weights": [1]}}, "inputs": X},
            "dims.seq.weights",
        ),
        ({"inputs": [{"name": "x", "shape": ["batch", "seq"]}]}, "'seq' is neither a size nor a dimension"),
        (
            {"dims": {"seq": 8}, "inputs": [{"name": "m", "shape": ["batch", 8], "mask": "ln"}]},
            "inputs[0].mask",
        ),
        ({"inputs": X, "pass_inputs": "named"}, "pass_inputs: must be one of"),
        ({"inputs": X, "format": "onnx"}, "format: must be one of"),
        ({"inputs": [*X, {"name": "x", "shape": ["batch", 2]}]}, "unique"),
    ],
)
def test_bad_dims_and_call_fields_name_the_field(tmp_path, spec, fragment):
    with pytest.raises(RunError) as e:
        read_model_spec(write(tmp_path / "v", spec))
    assert e.value.kind == "invalid_model_spec"
    assert fragment in str(e.value)


def test_dims_masks_and_call_style_are_read(tmp_path):
    spec = read_model_spec(
        write(
            tmp_path / "v",
            {
                "pass_inputs": "keyword",
                "dims": {"seq": {"dist": "normal", "mean": 64, "std": 8, "low": 16, "high": 128}, "w": 32},
                "inputs": [
                    {"name": "ids", "shape": ["batch", "seq"], "dtype": "int64", "range": [0, 30521]},
                    {"name": "mask", "shape": ["batch", "seq"], "mask": "seq"},
                ],
            },
        )
    )
    assert spec.pass_inputs == "keyword" and spec.artifact_format == "export"
    assert spec.dim("seq").support() == (16, 128) and spec.dim("w").support() == (32, 32)
    ids, mask = spec.inputs
    assert ids.sample_shape == ("seq",) and ids.high == 30521
    assert mask.mask == "seq" and mask.dtype == "int64" and mask.field == "inputs[1]"
