import zipfile

import pytest
import yaml

from benchd.errors import RunError
from benchd.runner.modelspec import read_model_spec


def write(folder, spec, artifact="model.pt2"):
    folder.mkdir(parents=True, exist_ok=True)
    if artifact:  # the layout of a torch.export archive: the format is recognised by content
        with zipfile.ZipFile(folder / artifact, "w") as z:
            z.writestr("model/archive_format", "pt2")
            z.writestr("model/models/model.json", "{}")
    (folder / "benchd.yaml").write_text(yaml.safe_dump(spec) if isinstance(spec, dict) else spec)
    return folder


def test_reads_inputs_batch_dimension_and_preprocessing(tmp_path):
    spec = read_model_spec(
        write(
            tmp_path / "v1",
            {
                "inputs": [{"name": "image", "shape": [3, "batch", 8], "dtype": "uint8", "range": [0, 255]}],
                "preprocess": [
                    {"op": "rescale", "scale": 0.5},
                    {"op": "normalize", "mean": [0.1, 0.2, 0.3], "std": [1, 2, 3]},
                    {"op": "cast", "dtype": "float16"},
                ],
                "performance_sample_count": 32,
            },
        )
    )
    (inp,) = spec.inputs
    assert inp.sample_shape == (3, 8) and inp.batch_dim == 1 and inp.dtype == "uint8"
    assert (inp.low, inp.high) == (0, 255)
    assert [s.op for s in spec.preprocess] == ["rescale", "normalize", "cast"]
    assert spec.performance_sample_count == 32
    assert spec.artifact.endswith("model.pt2")


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"inputs": [{"name": "x", "shape": [3, 4]}]}, "inputs[0].shape: mark exactly one batch dimension"),
        (
            {"inputs": [{"name": "x", "shape": ["batch", 0]}]},
            "inputs[0].shape: dimensions other than the batch",
        ),
        (
            {"inputs": [{"name": "x", "shape": ["batch", 4], "dtype": "complex"}]},
            "inputs[0].dtype: must be one of",
        ),
        ({"inputs": [{"name": "x", "shape": ["batch", 4], "range": [1, 0]}]}, "inputs[0].range"),
        ({"inputs": []}, "inputs: expected a non-empty list"),
        (
            {"inputs": [{"name": "x", "shape": ["batch", 4]}], "preprocess": [{"op": "blur"}]},
            "preprocess[0].op",
        ),
        ({"inputs": [{"name": "x", "shape": ["batch", 4], "shpae": 1}]}, "did you mean 'shape'"),
    ],
)
def test_bad_specs_name_file_and_field(tmp_path, spec, fragment):
    with pytest.raises(RunError) as e:
        read_model_spec(write(tmp_path / "v", spec))
    assert e.value.kind == "invalid_model_spec"
    assert fragment in str(e.value)
    assert "benchd.yaml" in str(e.value)


def test_missing_spec_artifact_and_dataset(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match="benchd.yaml is missing") as e:
        read_model_spec(tmp_path / "empty")
    assert e.value.kind == "invalid_model_spec"
    with pytest.raises(RunError, match="no model artifact") as e:
        read_model_spec(
            write(tmp_path / "noart", {"inputs": [{"name": "x", "shape": ["batch", 4]}]}, artifact=None)
        )
    assert e.value.kind == "artifact_not_found"
    with pytest.raises(RunError, match="dataset file 'data.npz' does not exist"):
        read_model_spec(write(tmp_path / "nodata", {"inputs": [{"name": "x", "dataset": "data.npz"}]}))
    with pytest.raises(RunError, match="not valid YAML"):
        read_model_spec(write(tmp_path / "badyaml", "inputs: [unclosed"))
