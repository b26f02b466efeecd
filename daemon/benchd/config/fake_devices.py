"""``devices.fake``: scripted GPUs for tests and demos (see :mod:`benchd.devices.fake` for what they do).

The top level holds the settings of every fake GPU plus ``count``, ``devices`` (per-GPU overrides, only
the settings they name) and ``cuda_visible_devices``. This is the one validator of that section:
:meth:`benchd.devices.fake.FakeDeviceSet.from_config` reads a mapping through it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BeforeValidator, Field, ValidationError, field_serializer, model_validator

from benchd.config.problems import FieldProblemsError, raise_problems
from benchd.config.units import Bool, ByteSize, ConfigModel, Int, Number, Str

#: NVML's throttle reasons, as :data:`benchd.devices.base.THROTTLE_REASONS` names them (a test checks).
ThrottleReason = Literal[
    "idle",
    "app_clocks",
    "power_cap",
    "hw_slowdown",
    "sync_boost",
    "thermal",
    "hw_thermal",
    "power_brake",
    "display_clocks",
]
#: Device readings a fake GPU can be scripted to fail, and how.
FailableCall = Literal[
    "power_mw",
    "energy_mj",
    "temperature_c",
    "utilization_ratio",
    "memory_used_bytes",
    "sm_clock_hz",
    "throttle_reasons",
]
FailKind = Literal["unavailable", "not_supported", "not_found", "error"]
MAX_FAKE_GPUS = 64
Seconds = Annotated[Number, Field(ge=0, le=1e7)]


class PowerPhaseConfig(ConfigModel):
    """From ``from_s`` seconds after the device was created (until the next phase) it draws ``w`` watts."""

    from_s: Seconds = Field(description="start of the phase, s after the device was created")
    w: Number = Field(ge=0, le=100_000, description="power drawn", json_schema_extra={"x-unit": "W"})


class ThrottleSpanConfig(ConfigModel):
    """From ``from_s`` to ``to_s`` (none: forever) seconds after creation the device reports ``reasons``."""

    from_s: Seconds = Field(0.0, description="start, s after the device was created")
    to_s: Seconds | None = Field(None, description="end (none: never)")
    reasons: tuple[ThrottleReason, ...] = Field((), description="NVML throttle reasons reported")

    @model_validator(mode="after")
    def _ordered(self) -> ThrottleSpanConfig:
        if self.to_s is not None and self.to_s <= self.from_s:
            raise FieldProblemsError([("to_s", f"must be > from_s ({self.from_s:g})")])
        return self


def _power_input(value: Any) -> Any:
    """Accept a constant (``250``), phases (``[{from_s: 0, w: 100}, ...]``) or pairs (``[[0, 100], ...]``)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return ({"from_s": 0.0, "w": value},)
    if isinstance(value, (list, tuple)):
        return tuple(
            {"from_s": p[0], "w": p[1]} if isinstance(p, (list, tuple)) and len(p) == 2 else p for p in value
        )
    if isinstance(value, str):
        raise ValueError(f"expected watts or a list of phases {{from_s: S, w: W}}, got {value!r}")
    return value


def _fail_on_input(value: Any) -> Any:
    """Accept a call name (fails as ``unavailable``), a list of names, or a mapping call -> kind."""
    if isinstance(value, str):
        return {value: "unavailable"}
    if isinstance(value, (list, tuple)):
        return {call: "unavailable" for call in value}
    return value


def _text_input(value: Any) -> Any:
    """YAML reads ``driver_version: 12.4`` as a number: take it as the text it was."""
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


Text = Annotated[Str, BeforeValidator(_text_input, json_schema_input_type=Union[str, float])]


class FakeGPUConfig(ConfigModel):
    """One scripted GPU: its identity, power, energy counter, throttling and scripted failures."""

    name: Text = Field("Fake GPU", description="device name, as NVML would report it")
    uuid: Text | None = Field(None, description="device UUID (none: GPU-00000000-0000-4000-8000-<index>)")
    power_w: Annotated[
        tuple[PowerPhaseConfig, ...],
        BeforeValidator(
            _power_input,
            json_schema_input_type=Union[float, list[Union[PowerPhaseConfig, tuple[float, float]]]],
        ),
    ] = Field(
        (PowerPhaseConfig(from_s=0.0, w=250.0),),
        min_length=1,
        max_length=1000,
        description="constant watts, or phases [{from_s: 0, w: 100}, {from_s: 2, w: 300}]",
        json_schema_extra={"x-unit": "W"},
    )
    energy_counter: Bool = Field(
        True, description="false: no counter, energy is integrated from sampled power"
    )
    energy_counter_period_s: Seconds = Field(
        0.0, le=60, description="> 0: the counter moves only every period"
    )
    power_period_s: Seconds = Field(0.0, le=60, description="> 0: power readings average the trailing period")
    counter_resets_s: tuple[Seconds, ...] = Field(
        (), max_length=1000, description="times the counter restarts at 0"
    )
    throttle: tuple[ThrottleSpanConfig, ...] = Field((), max_length=1000, description="throttle spans")
    throttle_reasons: tuple[ThrottleReason, ...] = Field((), description="throttle reasons for the whole run")
    fail_on: Annotated[
        dict[FailableCall, FailKind],
        BeforeValidator(
            _fail_on_input,
            json_schema_input_type=Union[FailableCall, list[FailableCall], dict[FailableCall, FailKind]],
        ),
    ] = Field(
        default_factory=dict,
        description="readings that fail: call -> unavailable|not_supported|not_found|error",
    )
    driver_version: Text = Field("550.54.15", description="driver version")
    cuda_driver_version: Text = Field("12.4", description="CUDA driver version")
    vbios_version: Text | None = Field("96.00.00.00.00", description="VBIOS version (none: not reported)")
    power_limit_w: Number | None = Field(
        700.0, gt=0, le=100_000, description="power limit, W (none: not reported)"
    )
    memory_total_bytes: ByteSize = Field(80 << 30, ge=0, le=1 << 50, description="device memory")
    memory_used_bytes: ByteSize = Field(2 << 30, ge=0, le=1 << 50, description="memory in use")
    utilization_ratio: Number = Field(1.0, ge=0, le=1, description="GPU utilisation, 0-1")
    temperature_c: Number = Field(60.0, ge=-50, le=150, description="temperature, degrees Celsius")
    sm_clock_hz: Number = Field(1.98e9, gt=0, le=1e10, description="SM clock, Hz")

    @field_serializer("power_w", when_used="json")
    def _show_power(self, phases: tuple[PowerPhaseConfig, ...]) -> Any:
        if len(phases) == 1 and phases[0].from_s == 0:
            return phases[0].w
        return [p.model_dump(mode="json") for p in phases]

    @model_validator(mode="after")
    def _phases_start_at_zero(self) -> FakeGPUConfig:
        if min(p.from_s for p in self.power_w) != 0:
            raise FieldProblemsError([("power_w", "the first phase must start at from_s 0")])
        return self


class FakeDevicesConfig(FakeGPUConfig):
    """Fake GPUs: the settings above for every one, plus how many and per-GPU overrides."""

    count: Int | None = Field(
        None, ge=0, le=MAX_FAKE_GPUS, description="number of fake GPUs (none: one per devices entry, else 1)"
    )
    devices: tuple[FakeGPUConfig, ...] = Field(
        (), max_length=MAX_FAKE_GPUS, description="per-GPU overrides of the settings above, in CUDA order"
    )
    cuda_visible_devices: Text | None = Field(
        None, description="applied like CUDA_VISIBLE_DEVICES to the fake GPUs (none: all of them)"
    )

    @property
    def device_count(self) -> int:
        """How many fake GPUs there are."""
        return self.count if self.count is not None else (len(self.devices) or 1)

    def device(self, index: int) -> FakeGPUConfig:
        """The settings of fake GPU ``index``: these, with its ``devices`` entry's overrides applied."""
        values = {key: getattr(self, key) for key in FakeGPUConfig.model_fields}
        if index < len(self.devices):
            entry = self.devices[index]
            values.update({key: getattr(entry, key) for key in entry.model_fields_set})
        return FakeGPUConfig.model_construct(**values)

    @classmethod
    def from_mapping(cls, data: Any, path: str = "devices.fake") -> FakeDevicesConfig:
        """Validate a ``devices.fake`` mapping (None: the defaults).

        Raises:
            InvalidConfigError: every invalid field, with its path under ``path``.
        """
        try:
            return cls.model_validate({} if data is None else data)
        except ValidationError as e:
            raise_problems(e, cls, None, prefix=path)
