"""GPU check: a ResNet-50-sized CNN on cuda:0, with energy and telemetry sampled from this (parent) process.

Run by bench/gpu_check.sh on a machine with an NVIDIA GPU. Two parts:

1. An independent measurement: a child process (``--child``) times single-stream (batch 1) and offline
   (large batches) queries on cuda:0 with both the harness clock (perf_counter_ns around copy, forward and
   synchronize) and CUDA events, and reports its measured windows as time.monotonic() seconds. This process
   samples the GPU through benchd.devices meanwhile and prints, per window: energy from the NVML counter vs
   energy from integrated power over the same window, telemetry, and harness vs CUDA-event time per query.
2. The same model through ``benchd.evaluate`` (the runner benchd itself uses), printing what it reports.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any


def build_resnet50() -> Any:
    """A ResNet-50 (bottleneck blocks 3-4-6-3, about 25.6 M parameters) in plain torch, random weights."""
    import torch
    from torch import nn

    class Bottleneck(nn.Module):
        def __init__(self, cin: int, width: int, stride: int) -> None:
            super().__init__()
            cout = width * 4
            self.body = nn.Sequential(
                nn.Conv2d(cin, width, 1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.Conv2d(width, width, 3, stride, 1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.Conv2d(width, cout, 1, bias=False),
                nn.BatchNorm2d(cout),
            )
            self.skip = (
                nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                if stride != 1 or cin != cout
                else nn.Identity()
            )
            self.relu = nn.ReLU(inplace=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.relu(self.body(x) + self.skip(x))

    layers: list[nn.Module] = [
        nn.Conv2d(3, 64, 7, 2, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, 1),
    ]
    cin = 64
    for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for i in range(blocks):
            layers.append(Bottleneck(cin, width, stride if i == 0 else 1))
            cin = width * 4
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 1000)]
    torch.manual_seed(0)
    return nn.Sequential(*layers).eval()


def child(out_path: str, seconds: float, offline_batch: int, device: str) -> None:
    """Time both scenarios on ``device`` and write windows and per-query times as JSON (runs in the child).

    On ``cpu`` (a smoke test of this script) there are no CUDA events; device time equals harness time.
    """
    import torch

    cuda = device.startswith("cuda")
    torch.backends.cudnn.benchmark = True
    model = build_resnet50().to(device)
    if cuda:
        start_evt, end_evt = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    result: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda}

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    def run(batch: int, min_queries: int) -> dict[str, Any]:
        x_host = torch.randn(batch, 3, 224, 224)
        for _ in range(20 if batch == 1 else 5):  # warm-up, cudnn autotuning
            model(x_host.to(device))
        sync()
        harness_s: list[float] = []
        device_s: list[float] = []
        start_s = time.monotonic()
        deadline_s = start_s + seconds
        while time.monotonic() < deadline_s or len(harness_s) < min_queries:
            t0_ns = time.perf_counter_ns()
            if cuda:
                start_evt.record()
            model(x_host.to(device))
            if cuda:
                end_evt.record()
            sync()
            harness_s.append((time.perf_counter_ns() - t0_ns) / 1e9)
            device_s.append(start_evt.elapsed_time(end_evt) / 1e3 if cuda else harness_s[-1])
        end_s = time.monotonic()
        return {
            "batch": batch,
            "start_s": start_s,
            "end_s": end_s,
            "harness_s": harness_s,
            "device_s": device_s,
        }

    with torch.inference_mode():
        result["single_stream"] = run(1, 100)
        result["offline"] = run(offline_batch, 10)
    with open(out_path, "w") as f:
        json.dump(result, f)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100.0 * len(ordered)))]


def counter_update_period_s(samples: list[Any]) -> float | None:
    """Median time between changes of the energy counter in the sampled series."""
    changes = [
        s.t_mono_s
        for a, s in zip(samples, samples[1:], strict=False)
        if s.energy_j is not None and s.energy_j != a.energy_j
    ]
    gaps = [b - a for a, b in zip(changes, changes[1:], strict=False)]
    return statistics.median(gaps) if gaps else None


def independent_check(seconds: float, offline_batch: int, device: str, devices_mode: str) -> int:
    from benchd.devices import RAPLReader, WindowSampler, host_fingerprint, open_devices
    from benchd.devices.energy import power_energy

    device_set = open_devices(devices_mode, require_gpu=True)
    info = device_set.get("cuda:0").info()
    print(f"GPU cuda:0: {info.name} {info.uuid} driver {info.driver_version} CUDA {info.cuda_driver_version}")
    print(f"  energy counter: {info.supports_energy_counter}, power averaging period {info.power_period_s} s")
    print("fingerprint:", json.dumps(host_fingerprint(device_set, device), sort_keys=True))
    with tempfile.TemporaryDirectory() as tmp:
        out_path = os.path.join(tmp, "child.json")
        sampler = WindowSampler(device_set, RAPLReader(), interval_s=0.02)
        with sampler:
            cmd = [
                sys.executable,
                __file__,
                "--child",
                out_path,
                "--seconds",
                str(seconds),
                "--offline-batch",
                str(offline_batch),
                "--device",
                device,
            ]
            try:
                returncode = subprocess.run(cmd, timeout=240).returncode
            except subprocess.TimeoutExpired:
                returncode = -1
        if returncode != 0:
            print(f"child benchmark failed (exit code {returncode}; -1: timed out after 240 s)")
            return 1
        with open(out_path) as f:
            data = json.load(f)
    print(f"torch {data['torch']} (CUDA runtime {data['cuda']})")
    series = sampler.samples("cuda:0")
    period = counter_update_period_s(series)
    print(
        f"telemetry samples: {len(series)}; energy counter update period ~ "
        f"{'n/a' if period is None else f'{period * 1000:.1f} ms'}; sampling errors {sampler.errors()}"
    )
    for scenario in ("single_stream", "offline"):
        run = data[scenario]
        start_s, end_s, batch = run["start_s"], run["end_s"], run["batch"]
        queries = len(run["harness_s"])
        n_samples = queries * batch
        energy = sampler.energy_for_window("cuda:0", start_s, end_s, samples=n_samples)
        integrated = power_energy(
            series, start_s, end_s, n_samples, f"{info.backend}_power_integration", info.power_period_s
        )
        telemetry = sampler.telemetry_for_window("cuda:0", start_s, end_s)
        h50, d50 = statistics.median(run["harness_s"]), statistics.median(run["device_s"])
        print(
            f"\n== {scenario} (batch {batch}): {queries} queries in {end_s - start_s:.2f} s, "
            f"{n_samples / (end_s - start_s):.1f} samples/s"
        )
        print(
            f"  per query  harness p50 {h50 * 1e3:.3f} ms  p99 {pct(run['harness_s'], 99) * 1e3:.3f} ms | "
            f"CUDA events p50 {d50 * 1e3:.3f} ms  p99 {pct(run['device_s'], 99) * 1e3:.3f} ms | "
            f"harness - events p50 {(h50 - d50) * 1e6:.1f} us"
        )
        print(f"  energy (counter):    {fmt_energy(energy)}")
        print(f"  energy (integrated): {fmt_energy(integrated)}")
        if energy.measured and integrated.measured and energy.energy_j:
            diff = (integrated.energy_j - energy.energy_j) / energy.energy_j
            print(f"  integrated vs counter: {diff * 100:+.2f} %")
        print(f"  telemetry: {telemetry}")
    device_set.close()
    return 0


def fmt_energy(report: Any) -> str:
    if not report.measured:
        return f"{report.reason} [{report.source}]"
    per_sample = "n/a" if report.energy_per_sample_j is None else f"{report.energy_per_sample_j * 1e3:.3f} mJ"
    return (
        f"{report.energy_j:.2f} J over {report.window_s:.2f} s, {per_sample}/sample, "
        f"mean {report.mean_power_w:.1f} W, peak {report.peak_power_w:.1f} W [{report.source}]"
        + (f" ({report.reason})" if report.reason else "")
    )


def evaluate_check(seconds: float) -> int:
    import torch

    import benchd

    model = build_resnet50()
    inputs = torch.randn(1, 3, 224, 224)
    overrides: dict[str, Any] = {
        "device": "cuda:0",
        "scenarios": ["single_stream", "offline"],
        "duration_s": seconds,
        "batch_sizes": [1, 32],
    }
    try:
        result = benchd.evaluate(model, inputs=inputs, **overrides)
    except Exception as e:  # report it: the independent measurement above still stands
        print(f"benchd.evaluate({overrides}) failed: {type(e).__name__}: {e}")
        return 1
    print(f"\n== benchd.evaluate {overrides}: outcome {result.outcome}")
    for r in result.results:
        dev = "n/a" if r.device_time_p50_s is None else f"{r.device_time_p50_s * 1e3:.3f} ms"
        print(
            f"  {r.scenario} batch {r.batch_size}: p50 {r.latency.p50_s * 1e3:.3f} ms, p99 "
            f"{r.latency.p99_s * 1e3:.3f} ms, device-time p50 {dev}, {r.throughput_sps:.1f} samples/s"
        )
        print(f"    energy: {fmt_energy(r.energy) if r.energy else 'none'}")
        print(f"    telemetry: {r.telemetry}")
    print(f"  fingerprint hardware_class: {result.fingerprint.get('hardware_class')}")
    return 0 if result.ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", metavar="OUT_JSON", help="internal: run the timed child and write JSON")
    parser.add_argument("--seconds", type=float, default=6.0, help="measured seconds per scenario")
    parser.add_argument("--offline-batch", type=int, default=64)
    parser.add_argument("--skip-evaluate", action="store_true", help="only the independent measurement")
    parser.add_argument("--device", default="cuda:0", help="cpu: smoke-test this script without a GPU")
    parser.add_argument("--devices-mode", default="nvml", help="fake: smoke-test with benchd's fake GPUs")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.seconds, args.offline_batch, args.device)
        return 0
    from benchd.errors import DeviceError

    try:
        status = independent_check(args.seconds, args.offline_batch, args.device, args.devices_mode)
    except DeviceError as e:  # a GPU the driver or NVML cannot use: say so in one line, fail
        print(f"GPU check FAILED: NVML cannot use the GPU: {e}")
        return 1
    if not args.skip_evaluate:
        status |= evaluate_check(min(args.seconds, 5.0))
    return status


if __name__ == "__main__":
    sys.exit(main())
