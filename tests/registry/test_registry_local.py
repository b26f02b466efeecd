"""The local-folder watcher: only complete folders, each reported once, across restarts."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from benchd.errors import RegistryError
from benchd.history import SQLiteHistoryStore
from benchd.registry import LocalFolderWatcher, MemoryCursorStore, UnknownModelVersionError


class Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def _version(
    root: Path, model: str, version: str, *, yaml: bool = True, artifact: str | None = "model.pt2"
) -> Path:
    folder = root / model / version
    folder.mkdir(parents=True, exist_ok=True)
    if artifact and not artifact.endswith(".pt2"):
        (folder / artifact).write_bytes(b"\x08\x07" * 32)  # e.g. an ONNX protobuf: no torch artifact
    elif artifact:  # what a torch.export archive holds: artifacts are recognised by content
        with zipfile.ZipFile(folder / artifact, "w") as z:
            z.writestr("model/archive_format", "pt2")
            z.writestr("model/models/model.json", "{}")
    if yaml:
        (folder / "benchd.yaml").write_text("inputs: [{shape: [1, 3], dtype: float32}]\n")
    return folder


def _ids(versions) -> list[tuple[str, str]]:
    return [(mv.model, mv.version) for mv in versions]


def test_half_copied_folder_is_reported_only_once_settled(
    tmp_path: Path, cursor_store: SQLiteHistoryStore
) -> None:
    clock = Clock()
    watcher = LocalFolderWatcher("local", tmp_path, cursor_store=cursor_store, settle_s=5.0, clock=clock)
    folder = _version(tmp_path, "resnet", "1", yaml=False)  # artifact copied, benchd.yaml not yet
    assert watcher.poll() == []
    clock.now_s += 60
    assert watcher.poll() == []  # never complete without benchd.yaml
    (folder / "benchd.yaml").write_text("inputs: []\n")
    assert watcher.poll() == []  # complete but not yet settled
    clock.now_s += 3
    with open(folder / "model.pt2", "ab") as fh:  # the copy is still growing
        fh.write(b"more")
    assert watcher.poll() == []
    clock.now_s += 4
    assert watcher.poll() == []  # only 4 s since the last change
    clock.now_s += 1.5
    found = watcher.poll()
    assert _ids(found) == [("resnet", "1")]
    mv = found[0]
    assert mv.registry == "local" and mv.path == str(folder.resolve()) and mv.source_uri.startswith("file://")
    assert watcher.poll() == []


def test_ready_marker_counts_at_once_and_two_versions_at_one_instant(tmp_path: Path, cursor_store) -> None:
    watcher = LocalFolderWatcher("local", tmp_path, cursor_store=cursor_store, settle_s=3600, clock=Clock())
    for version in ("v10", "v9"):
        (_version(tmp_path, "bert", version) / "READY").touch()
    (_version(tmp_path, "resnet", "1", yaml=False) / "READY").touch()  # READY wins even without benchd.yaml
    _version(tmp_path, "resnet", "2")  # not settled: waits
    assert _ids(watcher.poll()) == [("bert", "v9"), ("bert", "v10"), ("resnet", "1")]
    assert watcher.poll() == []


def test_restart_with_persisted_cursor_reports_nothing_twice(tmp_path: Path) -> None:
    root, db = tmp_path / "models", str(tmp_path / "benchd.sqlite")
    for v in ("1", "2"):
        (_version(root, "resnet", v) / "READY").touch()
    store = SQLiteHistoryStore(db)
    assert _ids(LocalFolderWatcher("local", root, cursor_store=store).poll()) == [
        ("resnet", "1"),
        ("resnet", "2"),
    ]
    store.close()
    (_version(root, "resnet", "3") / "READY").touch()
    store = SQLiteHistoryStore(db)
    restarted = LocalFolderWatcher("local", root, cursor_store=store)
    assert _ids(restarted.poll()) == [("resnet", "3")]
    assert restarted.poll() == []
    # another registry name has its own cursor
    assert len(LocalFolderWatcher("other", root, cursor_store=store).poll()) == 3
    store.close()


def test_pending_does_not_move_the_cursor_until_ack(tmp_path: Path) -> None:
    (_version(tmp_path, "m", "1") / "READY").touch()
    watcher = LocalFolderWatcher("local", tmp_path, cursor_store=MemoryCursorStore())
    first = watcher.pending()
    assert _ids(watcher.pending()) == _ids(first) == [("m", "1")]
    watcher.ack(first)
    assert watcher.pending() == []


def test_hidden_folders_files_and_missing_root_are_ignored(tmp_path: Path) -> None:
    watcher = LocalFolderWatcher("local", tmp_path / "absent", settle_s=0)
    assert watcher.poll() == []
    root = tmp_path / "models"
    (_version(root, "m", ".partial-copy") / "READY").touch()
    (root / "m" / "notes.txt").write_text("x")
    (root / "README").write_text("x")
    _version(root, "m", "1", artifact="model.onnx")  # not an artifact benchd loads
    assert LocalFolderWatcher("local", root, settle_s=0).poll() == []


def test_champion_from_file_or_symlink(tmp_path: Path) -> None:
    watcher = LocalFolderWatcher("local", tmp_path, settle_s=0)
    for v in ("1", "2"):
        (_version(tmp_path, "m", v) / "READY").touch()
    assert watcher.champion("m") is None
    (tmp_path / "m" / "champion").write_text("1\n")
    assert watcher.champion("m") == "1"
    found = {mv.version: mv for mv in watcher.poll()}
    assert found["1"].aliases == ("champion",) and found["2"].aliases == ()
    (tmp_path / "m" / "champion").unlink()
    os.symlink("2", tmp_path / "m" / "champion")  # a symlink to the version folder
    assert watcher.champion("m") == "2"
    assert watcher.poll() == []  # the symlink is not a new version
    assert watcher.champion("unknown") is None


def test_fetch_returns_the_local_folder_or_raises(tmp_path: Path) -> None:
    (_version(tmp_path, "m", "1") / "READY").touch()
    watcher = LocalFolderWatcher("local", tmp_path, settle_s=0)
    [mv] = watcher.poll()
    assert watcher.fetch(mv).path == str((tmp_path / "m" / "1").resolve())
    (tmp_path / "m" / "1" / "READY").unlink()
    for f in (tmp_path / "m" / "1").iterdir():
        f.unlink()
    (tmp_path / "m" / "1").rmdir()
    with pytest.raises(RegistryError, match="local registry local: model m version 1"):
        watcher.fetch(mv)


def test_bad_cursor_value_raises_registry_error(tmp_path: Path) -> None:
    (_version(tmp_path, "m", "1") / "READY").touch()
    store = MemoryCursorStore()
    store.set_cursor("local", "m", "{not json")
    with pytest.raises(RegistryError, match="bad cursor"):
        LocalFolderWatcher("local", tmp_path, cursor_store=store).poll()


def test_a_version_folder_linked_outside_the_root_is_refused_and_skipped(tmp_path: Path, caplog) -> None:
    root, outside = tmp_path / "registry", tmp_path / "elsewhere"
    _version(root, "resnet", "1")
    secret = _version(outside, "x", "secret")
    (root / "resnet" / "2").symlink_to(secret, target_is_directory=True)
    (root / "linked").symlink_to(outside / "x", target_is_directory=True)  # a whole model dir outside
    inside = _version(root, "resnet", "3")
    (root / "resnet" / "4").symlink_to(inside, target_is_directory=True)  # a link inside the root is fine
    for folder in (root / "resnet" / "1", inside):
        (folder / "READY").touch()
    watcher = LocalFolderWatcher("local", root, settle_s=0.0)
    assert _ids(watcher.poll()) == [("resnet", "1"), ("resnet", "3"), ("resnet", "4")]
    refusals = [r.getMessage() for r in caplog.records if "outside the registry root" in r.getMessage()]
    assert len(refusals) == 2 and any("model resnet version 2" in m for m in refusals)
    assert any("model linked version secret" in m for m in refusals)
    assert watcher.poll() == []  # skipped again, without a second warning
    assert len([r for r in caplog.records if "outside the registry root" in r.getMessage()]) == 2
    assert watcher.list_versions("resnet") == ["1", "3", "4"]
    with pytest.raises(RegistryError, match="leads outside the registry root"):
        watcher.find_version("resnet", "2")


def test_an_artifact_linked_outside_its_folder_is_refused(tmp_path: Path, caplog) -> None:
    root = tmp_path / "registry"
    folder = _version(root, "bert", "1", artifact=None)
    (tmp_path / "host-file").write_bytes(b"not yours")
    (folder / "model.pt2").symlink_to(tmp_path / "host-file")
    (folder / "READY").touch()
    watcher = LocalFolderWatcher("local", root, settle_s=0.0)
    assert watcher.poll() == []
    assert "model.pt2 is a link that leads outside the version folder" in caplog.text


@pytest.mark.parametrize(("model", "version"), [("..", "registry"), ("bert", ".."), ("bert/../bert", "1")])
def test_names_that_are_not_one_folder_are_unknown_versions(tmp_path: Path, model: str, version: str) -> None:
    root = tmp_path / "registry"
    _version(root, "bert", "1")
    watcher = LocalFolderWatcher("local", root, settle_s=0.0)
    with pytest.raises(UnknownModelVersionError):
        watcher.find_version(model, version)
