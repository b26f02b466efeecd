"""The benchmark config: scenarios, batch sizes, device and numerics (``benchd bench``, ``benchmark:``).

The same model reads a bare benchmark file and the daemon config's ``benchmark:`` section. Scenario
settings are declared once in :class:`ScenarioConfig`; ``defaults`` holds them for every scenario and each
entry of ``scenarios`` overrides only the settings it names.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BeforeValidator,
    Field,
    PrivateAttr,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from benchd.config.problems import FieldProblemsError, raise_problems
from benchd.config.units import HOUR_S, Bool, ConfigModel, Duration, Int, Number, Str, format_duration
from benchd.records import SCENARIOS, RunSpec, ScenarioSettings
from benchd.runner.cpus import worker_threads

# a Literal of the names records.SCENARIOS holds (one list); mypy accepts only literal values there
ScenarioName = Literal[SCENARIOS]  # type: ignore[valid-type]
DTYPES = ("float32", "float16", "bfloat16", "float64")
SEED_MAX = 2**32 - 1


class ScenarioConfig(ConfigModel):
    """How one scenario runs (LoadGen vocabulary); see :class:`benchd.records.ScenarioSettings`."""

    warmup_queries: Int = Field(20, ge=0, le=1_000_000, description="warm-up queries, discarded")
    warmup_s: Duration = Field(
        1.0, alias="warmup", ge=0, le=HOUR_S, description="warm-up goes on at least this long, discarded"
    )
    min_duration_s: Duration = Field(
        5.0, alias="min_duration", ge=0, le=24 * HOUR_S, description="measured phase: at least this long"
    )
    max_duration_s: Duration = Field(
        60.0, alias="max_duration", gt=0, le=24 * HOUR_S, description="measured phase: at most this long"
    )
    min_query_count: Int = Field(
        100, ge=1, le=100_000_000, description="measured phase: at least this many queries"
    )
    max_query_count: Int = Field(
        10_000_000, ge=1, le=100_000_000, description="measured phase: at most this many queries"
    )
    samples_per_query: Int = Field(8, ge=1, le=65536, description="multi_stream: samples each query carries")
    target_qps: Number = Field(100.0, gt=0, le=1_000_000, description="server: Poisson arrival rate")
    latency_bound_s: Duration | None = Field(
        None, alias="latency_bound", gt=0, le=HOUR_S, description="server: latency the percentile must meet"
    )
    latency_percentile: Number = Field(
        99.0,
        gt=0,
        le=99.999,
        description="server: the percentile the bound applies to",
        json_schema_extra={"x-unit": "%"},
    )
    search_max_qps: Bool = Field(False, description="server: search the highest QPS that meets the bound")
    concurrency: Int = Field(4, ge=1, le=1024, description="concurrency: closed-loop streams")
    seed: Int = Field(0, ge=0, le=SEED_MAX, description="seeds the arrival schedule")


def _scenarios_input(value: Any) -> Any:
    """Accept ``[single_stream, server]``, ``"single_stream,server"`` or ScenarioSettings from code."""
    if isinstance(value, str):
        value = [s.strip() for s in value.split(",") if s.strip()]
    if isinstance(value, (list, tuple)) and all(isinstance(s, ScenarioSettings) for s in value) and value:
        out: dict[str, Any] = {}
        for s in value:
            if s.name in out:
                raise ValueError(f"scenario {s.name} is listed twice")
            out[s.name] = {k: v for k, v in dataclasses.asdict(s).items() if k != "name"}
        return out
    if isinstance(value, (list, tuple)) and all(isinstance(s, str) for s in value):
        if len(set(value)) != len(value):
            raise ValueError(f"a scenario is listed twice: {list(value)}")
        return {name: {} for name in value}
    return value


def _batch_sizes_input(value: Any) -> Any:
    """Accept ``8``, ``"1,8,32"`` or a list."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,)
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",") if p.strip()]
        return tuple(int(p) if p.isdigit() else p for p in parts)
    return value


BatchSize = Annotated[Int, Field(ge=1, le=65536)]


def _threads_input(value: Any) -> Any:
    """``auto``, ``none``/null or a count from 1 to 1024, else one sentence saying so."""
    if value is None or value == "auto":
        return value
    if value == "none":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 1024:
        return value
    raise ValueError(f"must be a thread count from 1 to 1024, auto or none; got {value!r}")


Threads = Annotated[
    Union[Literal["auto"], int, None],
    BeforeValidator(_threads_input, json_schema_input_type=Union[Literal["auto", "none"], int, None]),
]


class BenchConfig(ConfigModel):
    """How to benchmark a model version: scenarios, batch sizes, device and numerics.

    ``scenarios`` is the tuple of :class:`~benchd.records.ScenarioSettings` to run (each scenario's overrides
    applied on top of ``defaults``); in YAML it is a list of names or a mapping name -> overrides.
    """

    device: Str = Field(
        "auto", description="auto (cuda:0 when NVML sees a GPU, else cpu), cpu, cuda or cuda:N"
    )
    batch_sizes: Annotated[
        tuple[BatchSize, ...],
        BeforeValidator(_batch_sizes_input, json_schema_input_type=Union[BatchSize, list[BatchSize], str]),
    ] = Field((1,), min_length=1, max_length=64, description="batch sizes to run; a list is a sweep")
    # a Literal of DTYPES (one list, also exported); mypy accepts only literal values there
    dtype: Literal[DTYPES] = Field("float32", description="model and input dtype")  # type: ignore[valid-type]
    amp: Bool = Field(False, description="run under torch.autocast")
    compile: Bool = Field(False, description="torch.compile the model before timing")
    threads: Threads = Field(
        "auto",
        description="torch intra-op threads in the worker: a count, auto (every CPU but one, at least one: "
        "the host's other work gets a CPU of its own) or none (torch's default, every CPU)",
    )
    cpu_set: Literal["auto", "none"] | tuple[Annotated[Int, Field(ge=0, le=4095)], ...] = Field(
        "auto",
        description="CPUs the worker pins itself to, benchd's own threads kept off them: a list, none, or "
        "auto (the last `threads` CPUs when that leaves one for benchd)",
    )
    timeout_s: Duration = Field(
        600.0,
        alias="timeout",
        gt=0,
        le=24 * HOUR_S,
        description="per run, loading included; then the worker is killed",
    )
    seed: Int = Field(0, ge=0, le=SEED_MAX, description="seeds inputs and schedules")
    allow_pickle: Bool = Field(
        False, description="allow pickled models (loading runs code from the file: trusted files only)"
    )
    allow_native_code: Bool = Field(
        False,
        description="allow AOTInductor packages (loading runs their compiled code: trusted files only)",
    )
    defaults: ScenarioConfig = Field(
        default_factory=ScenarioConfig, description="settings every scenario starts from"
    )
    scenario_configs: Annotated[
        dict[ScenarioName, ScenarioConfig],
        BeforeValidator(
            _scenarios_input,
            json_schema_input_type=Union[dict[ScenarioName, ScenarioConfig], list[ScenarioName], str],
        ),
    ] = Field(
        default_factory=lambda: {"single_stream": ScenarioConfig()},
        alias="scenarios",
        min_length=1,
        description="scenarios to run: names, or a mapping name -> settings overriding defaults",
    )
    _scenarios: tuple[ScenarioSettings, ...] = PrivateAttr(())

    @field_validator("device")
    @classmethod
    def _device(cls, device: str) -> str:
        if device in ("auto", "cpu", "cuda") or (device.startswith("cuda:") and device[5:].isdigit()):
            return device
        raise ValueError(f"must be auto, cpu, cuda or cuda:N; got {device!r}")

    @field_validator("cpu_set")
    @classmethod
    def _cpu_set(cls, cpus: str | tuple[int, ...]) -> str | tuple[int, ...]:
        if isinstance(cpus, tuple) and not cpus:
            raise ValueError("an empty CPU list pins nothing: use none")
        return cpus

    @field_validator("batch_sizes")
    @classmethod
    def _unique_batch_sizes(cls, sizes: tuple[int, ...]) -> tuple[int, ...]:
        if len(set(sizes)) != len(sizes):
            raise ValueError(f"a batch size is listed twice: {list(sizes)}")
        return sizes

    @model_validator(mode="after")
    def _resolve_scenarios(self) -> BenchConfig:
        problems: dict[str, str] = {}
        resolved = []
        for name, overrides in self.scenario_configs.items():
            values = {key: getattr(self.defaults, key) for key in ScenarioConfig.model_fields}
            values.update({key: getattr(overrides, key) for key in overrides.model_fields_set})
            settings = ScenarioSettings(name=name, **values)
            for low, high, shown in (
                ("min_duration_s", "max_duration_s", format_duration(settings.min_duration_s)),
                ("min_query_count", "max_query_count", str(settings.min_query_count)),
            ):
                if getattr(settings, high) < getattr(settings, low):
                    where = (
                        "defaults" if not {low, high} & overrides.model_fields_set else f"scenarios.{name}"
                    )
                    field_high = ScenarioConfig.model_fields[high].alias or high
                    field_low = ScenarioConfig.model_fields[low].alias or low
                    problems[f"{where}.{field_high}"] = f"must be >= {field_low} ({shown})"
            resolved.append(settings)
        if problems:
            raise FieldProblemsError(problems.items())
        self._scenarios = tuple(resolved)
        return self

    @field_serializer("scenario_configs", when_used="json")
    def _show_scenarios(self, configs: dict[str, ScenarioConfig]) -> dict[str, Any]:
        return {name: c.model_dump(mode="json", exclude_unset=True) for name, c in configs.items()}

    @property
    def scenarios(self) -> tuple[ScenarioSettings, ...]:
        """The scenarios to run, in order, with ``defaults`` and each scenario's overrides applied."""
        return self._scenarios

    def replace(self, **changes: Any) -> BenchConfig:
        """Return a validated copy with ``changes`` (attribute names; ``scenarios`` takes ScenarioSettings).

        Raises:
            InvalidConfigError: a changed value is invalid.
        """
        data: dict[str, Any] = {name: getattr(self, name) for name in type(self).model_fields}
        if "scenarios" in changes:
            del data["scenario_configs"]
        data.update(changes)
        try:
            return type(self).model_validate(data)
        except ValidationError as e:
            raise_problems(e, type(self), None)

    def run_spec(
        self,
        *,
        model: str,
        version: str,
        model_path: str,
        device: str | None = None,
        scenarios: tuple[ScenarioSettings, ...] | None = None,
        batch_sizes: tuple[int, ...] | None = None,
        allow_pickle: bool = False,
        allow_native_code: bool = False,
        cpus: tuple[int, ...] | None = None,
        baseline: str | None = None,
    ) -> RunSpec:
        """The one place a :class:`RunSpec` is built: these settings applied to one model version.

        Args:
            model: the model's name.
            version: the version.
            model_path: the local version folder.
            device: the device to run on (default: this config's ``device``).
            scenarios: a subset of the scenarios (default: all of them).
            batch_sizes: a subset of the batch sizes (default: all of them).
            allow_pickle: True when the version's registry allows pickles (this config can allow them too).
            allow_native_code: True when the registry allows AOTInductor packages (native code; this config
                can allow them too).
            cpus: the CPUs the worker pins itself to on this host (``benchd.runner.cpus.worker_cpus`` of
                ``cpu_set``), None for no pinning.
            baseline: a baseline the daemon should compare with (a version or an alias).
        """
        return RunSpec(
            model=model,
            version=version,
            model_path=str(model_path),
            scenarios=scenarios or self.scenarios,
            batch_sizes=batch_sizes or self.batch_sizes,
            device=device or self.device,
            dtype=self.dtype,
            amp=self.amp,
            compile=self.compile,
            threads=worker_threads(self.threads),
            allow_pickle=self.allow_pickle or allow_pickle,
            allow_native_code=self.allow_native_code or allow_native_code,
            cpus=cpus,
            timeout_s=self.timeout_s,
            seed=self.seed,
            baseline=baseline,
        )
