"""Fake devices: scripted power, energy, throttling and failures; config validation."""

from __future__ import annotations

import math

import pytest

from benchd.devices import FakeDevice, FakeDeviceSet
from benchd.devices.fake import PowerPhase, ThrottleSpan
from benchd.errors import ConfigError, DeviceError, DeviceNotSupportedError, DeviceUnavailableError

from .conftest import FakeClock


def test_constant_power_counter_advances_with_the_clock(clock: FakeClock) -> None:
    device = FakeDevice(power_w=250.0, clock=clock)
    assert device.energy_j() == 0.0
    clock.advance(2.0)
    assert device.energy_j() == 500.0
    assert device.energy_mj() == 500_000
    assert device.power_mw() == 250_000
    assert device.power_w() == 250.0


def test_phases_integrate_piecewise(clock: FakeClock) -> None:
    device = FakeDevice(power_w=[PowerPhase(2.0, 300.0), PowerPhase(0.0, 100.0)], clock=clock)
    clock.advance(1.0)
    assert device.power_w() == 100.0
    assert device.energy_j() == pytest.approx(100.0)
    clock.advance(2.0)
    assert device.power_w() == 300.0
    assert device.energy_j() == pytest.approx(200.0 + 300.0)
    with pytest.raises(ValueError, match="from_s 0"):
        FakeDevice(power_w=[PowerPhase(1.0, 100.0)], clock=clock)


def test_counter_period_resets_and_averaged_power(clock: FakeClock) -> None:
    device = FakeDevice(
        power_w=[PowerPhase(0.0, 100.0), PowerPhase(1.0, 200.0)],
        energy_counter_period_s=0.1,
        power_period_s=1.0,
        counter_resets_s=[1.5],
        clock=clock,
    )
    clock.advance(0.55)
    assert device.energy_j() == pytest.approx(50.0)  # counter last moved at 0.5 s
    assert device.power_w() == 100.0
    clock.advance(0.95)  # 1.5 s: the counter restarted from 0
    assert device.energy_j() == pytest.approx(0.0)
    assert device.power_w() == pytest.approx(150.0)  # mean over 0.5..1.5 s
    clock.advance(0.5)
    assert device.energy_j() == pytest.approx(100.0)


def test_without_counter_energy_is_none(clock: FakeClock) -> None:
    device = FakeDevice(supports_energy_counter=False, clock=clock)
    assert device.info().supports_energy_counter is False
    assert device.energy_mj() is None
    assert device.sample().energy_j is None


def test_throttle_spans_are_active_in_their_window_in_nvml_order(clock: FakeClock) -> None:
    device = FakeDevice(
        throttle=[ThrottleSpan(1.0, 2.0, ("thermal",)), ThrottleSpan(1.5, math.inf, ("power_cap",))],
        clock=clock,
    )
    assert device.throttle_reasons() == ()
    clock.advance(1.6)
    assert device.throttle_reasons() == ("power_cap", "thermal")
    clock.advance(1.0)
    assert device.sample().throttle_reasons == ("power_cap",)
    with pytest.raises(ValueError, match="unknown throttle reasons"):
        FakeDevice(throttle=[ThrottleSpan(0, 1, ("overheated",))])


def test_fail_on_raises_the_scripted_error(clock: FakeClock) -> None:
    device = FakeDevice(fail_on={"energy_mj": "unavailable", "sm_clock_hz": "not_supported"}, clock=clock)
    with pytest.raises(DeviceUnavailableError, match="energy_mj"):
        device.energy_mj()
    with pytest.raises(DeviceNotSupportedError):
        device.sm_clock_hz()
    with pytest.raises(DeviceUnavailableError):
        device.sample()  # a failing supported reading fails the sample
    partial = FakeDevice(fail_on={"sm_clock_hz": "not_supported"}, clock=clock).sample()
    assert partial.sm_clock_hz is None
    assert partial.power_w == 250.0
    with pytest.raises(DeviceUnavailableError):
        FakeDevice(fail_on="temperature_c", clock=clock).sample()  # a plain name means "unavailable"
    with pytest.raises(ValueError, match="unknown call"):
        FakeDevice(fail_on=["reboot"])


def test_from_config_builds_scripted_devices(clock: FakeClock) -> None:
    device_set = FakeDeviceSet.from_config(
        {
            "count": 2,
            "power_w": [{"from_s": 0, "w": 100}, [1.0, 300]],
            "throttle_reasons": ["power_cap"],
            "devices": [{"name": "NVIDIA H200", "driver_version": "570.86.15", "energy_counter": False}],
            "temperature_c": 71,
        },
        clock=clock,
    )
    first, second = device_set.devices
    assert first.info().name == "NVIDIA H200"
    assert first.info().supports_energy_counter is False
    assert second.info().name == "Fake GPU"
    assert second.info().uuid != first.info().uuid
    clock.advance(2.0)
    assert second.energy_j() == pytest.approx(400.0)
    assert second.throttle_reasons() == ("power_cap",)
    assert second.temperature_c() == 71


@pytest.mark.parametrize(
    ("config", "path"),
    [
        ({"cout": 2}, "devices.fake.cout"),
        ({"count": -1}, "devices.fake.count"),
        ({"count": True}, "devices.fake.count"),
        ({"power_w": "lots"}, "devices.fake.power_w"),
        ({"power_w": [{"from_s": 0}]}, "devices.fake.power_w[0].w"),
        ({"power_w": [[1.0, 100]]}, "devices.fake.power_w"),
        ({"throttle": [{"from_s": 0, "to_s": "x"}]}, "devices.fake.throttle[0].to_s"),
        ({"throttle_reasons": ["hot"]}, "devices.fake.throttle_reasons[0]"),
        ({"devices": [{"colour": "green"}]}, "devices.fake.devices[0].colour"),
        ({"devices": {"name": "x"}}, "devices.fake.devices"),
        ({"fail_on": {"power_mw": "exploded"}}, "devices.fake.fail_on.power_mw"),
    ],
)
def test_from_config_errors_name_the_field(config: dict, path: str) -> None:
    with pytest.raises(ConfigError) as caught:
        FakeDeviceSet.from_config(config)
    assert caught.value.path == path


def test_fake_errors_are_device_errors() -> None:
    assert issubclass(DeviceUnavailableError, DeviceError)
    with pytest.raises(DeviceError):
        FakeDevice(fail_on={"temperature_c": "error"}).temperature_c()
