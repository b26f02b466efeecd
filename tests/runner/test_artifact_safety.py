"""A model artifact is hostile until proven otherwise: pickles inside .pt2 archives, escaping paths."""

from __future__ import annotations

import numpy as np
import pytest

from benchd.errors import RunError
from benchd.records import RunSpec
from benchd.runner.launch import run_spec
from benchd.runner.modelspec import read_model_spec
from tests.conftest import quick
from tests.runner import builders


def spec(folder, **kw):
    base = dict(model="m", version="1", model_path=str(folder), scenarios=(quick(),), timeout_s=120)
    base.update(kw)
    return RunSpec(**base)


@pytest.fixture
def pickled_pt2(tmp_path):
    """A real exported MLP whose first weight entry is marked pickled and holds a code-running pickle."""
    clean = builders.static_mlp_version(tmp_path / "clean" / "1")
    folder = tmp_path / "evil" / "1"
    marker = tmp_path / "PWNED"
    folder.mkdir(parents=True)
    builders.pickled_weight_pt2(clean / "model.pt2", folder / "model.pt2", marker)
    (folder / "benchd.yaml").write_text((clean / "benchd.yaml").read_text())
    return folder, marker


def test_a_pt2_with_a_pickled_weight_is_refused_before_it_runs(pickled_pt2, tmp_path):
    folder, marker = pickled_pt2
    result = run_spec(spec(folder), tmp_path / "out")
    assert not marker.exists(), "the pickle in the archive ran"
    assert (result.outcome, result.error_kind) == ("failed", "pickle_refused")
    assert "data/weights/weight_0" in result.error and "use_pickle" in result.error
    assert "allow_pickle" in result.error


def test_the_crafted_archive_is_real_the_payload_runs_only_when_pickles_are_allowed(pickled_pt2, tmp_path):
    folder, marker = pickled_pt2
    result = run_spec(spec(folder, allow_pickle=True), tmp_path / "out")
    assert marker.exists()  # what the refusal above protects from: the payload runs in the worker
    assert result.ok, result.error


def test_sample_inputs_referencing_code_are_refused(tmp_path):
    import io
    import pickle
    import zipfile

    from benchd.runner.pt2_safety import check_pt2_pickles, unsafe_globals

    clean = builders.static_mlp_version(tmp_path / "clean" / "1") / "model.pt2"
    with zipfile.ZipFile(clean) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    name = next(n for n in entries if "/data/sample_inputs/" in n)
    entries[name] = pickle.dumps(builders._Exec("pass"), protocol=2)
    bad = tmp_path / "bad.pt2"
    with zipfile.ZipFile(bad, "w") as out:
        for n, data in entries.items():
            out.writestr(n, data)
    with pytest.raises(RunError) as e:
        check_pt2_pickles(bad, allow_pickle=False)
    assert (
        e.value.kind == "pickle_refused"
        and "sample_inputs" in str(e.value)
        and "__builtin__.eval" in str(e.value)
    )
    check_pt2_pickles(clean, allow_pickle=False)  # a plain export passes
    # a protocol-4 STACK_GLOBAL is resolved too, and a plain tensor pickle references nothing unsafe
    assert unsafe_globals(pickle.dumps(builders._Exec("pass"), protocol=4)) == ["builtins.eval"]
    import torch

    buffer = io.BytesIO()
    torch.save({"x": torch.zeros(2)}, buffer)
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as z:
        pkl = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    assert unsafe_globals(pkl) == []


def _folder_with(tmp_path, spec_text):
    folder = builders.static_mlp_version(tmp_path / "reg" / "m" / "1")
    (folder / "benchd.yaml").write_text(spec_text)
    return folder


@pytest.mark.parametrize(
    ("spec_text", "link", "field"),
    [
        ("artifact: ../../../outside.pt2\ninputs: [{name: x, shape: [batch, 64]}]\n", None, "artifact"),
        ("inputs: [{name: x, dataset: ../../../secret.npy}]\n", None, "inputs[0].dataset"),
        ("artifact: link.pt2\ninputs: [{name: x, shape: [batch, 64]}]\n", "link.pt2", "artifact"),
        ("inputs: [{name: x, shape: [batch, 64]}]\n", "link.pt2", "artifact 'link.pt2' (found)"),
        ("inputs: [{name: x, dataset: data-link.npy}]\n", "data-link.npy", "inputs[0].dataset"),
    ],
)
def test_artifact_and_dataset_paths_stay_inside_the_version_folder(tmp_path, spec_text, link, field):
    outside = tmp_path / "outside.pt2"
    outside.write_bytes((builders.static_mlp_version(tmp_path / "x" / "1") / "model.pt2").read_bytes())
    np.save(tmp_path / "secret.npy", np.zeros((4, 64), dtype=np.float32))
    folder = _folder_with(tmp_path, spec_text)
    if link == "link.pt2":
        (folder / "model.pt2").unlink()
        (folder / link).symlink_to(outside)
    elif link:
        (folder / link).symlink_to(tmp_path / "secret.npy")
    with pytest.raises(RunError) as e:
        read_model_spec(folder)
    assert e.value.kind == "invalid_model_spec"
    assert f"{field}: " in str(e.value) and "outside the version folder" in str(e.value)
    result = run_spec(spec(folder), tmp_path / "out")
    assert result.error_kind == "invalid_model_spec"


def test_an_aoti_package_needs_permission_for_its_native_code(tmp_path):
    folder = tmp_path / "aoti" / "1"
    folder.mkdir(parents=True)
    # the layout of an AOTInductor package (refused before anything is loaded, so no compile needed)
    import zipfile

    with zipfile.ZipFile(folder / "model.pt2", "w") as z:
        z.writestr("model/data/aotinductor/model/x.wrapper.so", b"\x7fELF")
        z.writestr("model/archive_format", "pt2")
    builders.write_spec(folder, {"inputs": [{"name": "x", "shape": ["batch", 64]}]})
    result = run_spec(spec(folder), tmp_path / "out")
    assert result.error_kind == "native_code_refused"
    assert "AOTInductor package" in result.error and "allow_native_code" in result.error
