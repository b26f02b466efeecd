"""The device interface: CUDA_VISIBLE_DEVICES semantics, CUDA names, empty sets, open_devices modes."""

from __future__ import annotations

import pytest

from benchd.devices import EmptyDeviceSet, FakeDeviceSet, open_devices, visible_device_indices
from benchd.errors import ConfigError, DeviceNotFoundError

UUIDS = ["GPU-aaaa-0", "GPU-bbbb-1", "GPU-bbcc-2"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, [0, 1, 2]),
        ("", []),
        ("  ", []),
        ("2,0", [2, 0]),
        (" 1 , 2 ", [1, 2]),
        ("0,5,1", [0]),
        ("1,1,2", [1]),
        ("-1,0", []),
        ("GPU-bbcc-2,0", [2, 0]),
        ("GPU-aaaa", [0]),
        ("bbcc", [2]),
        ("GPU-bb", []),
        ("MIG-1234,0", []),
        ("1,", [1]),
    ],
)
def test_visible_device_indices_follow_cuda_rules(value: str | None, expected: list[int]) -> None:
    assert visible_device_indices(value, UUIDS) == expected


def test_cuda_names_resolve_through_the_visible_order() -> None:
    device_set = FakeDeviceSet.from_config({"count": 3, "cuda_visible_devices": "2,0"})
    assert len(device_set) == 2
    assert [d.info().index for d in device_set] == [2, 0]
    assert device_set.get("cuda:1").info().index == 0
    assert device_set.get(" cuda ").info().index == 2
    for bad in ("cuda:2", "cpu", "cuda:x", "gpu:0"):
        with pytest.raises(DeviceNotFoundError):
            device_set.get(bad)


def test_empty_set_explains_itself() -> None:
    device_set = EmptyDeviceSet("NVML cannot start: no driver")
    assert len(device_set) == 0
    assert list(device_set) == []
    with pytest.raises(DeviceNotFoundError, match="no driver"):
        device_set.get("cuda:0")


def test_open_devices_modes() -> None:
    assert isinstance(open_devices("none"), EmptyDeviceSet)
    with open_devices("fake", fake={"count": 2}) as device_set:
        assert len(device_set) == 2
        assert device_set.get("cuda:1").info().backend == "fake"
    with pytest.raises(ConfigError, match="devices.mode"):
        open_devices("cuda")
    with pytest.raises(DeviceNotFoundError, match="require_gpu"):
        open_devices("none", require_gpu=True)
    with pytest.raises(DeviceNotFoundError):
        open_devices("fake", require_gpu=True, fake={"count": 0})


def test_fake_devices_ignore_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert len(open_devices("fake", fake={"count": 2})) == 2
