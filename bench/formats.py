"""Per-query overhead of each artifact format, side by side with a bare eager call timed the same way.

For a small MLP and a small BERT-like encoder (transformers' config classes, random weights, no download),
this writes each format into a version folder, loads it with benchd's own loader (the worker's path:
``benchd.runner.prepare.load_version``), builds benchd's query function and times it in one thread,
interleaving formats in rounds so drift hits all alike. The reference is the eager module called directly
on the same prepared tensors. Goals: AOTInductor and TorchScript within 5 us of eager at p50; the .pt2
program path within 10 us (its graph is called with pre-flattened inputs) -- or labelled.

    python bench/formats.py [--queries 2000] [--rounds 5] [--threads 1] [--skip-aoti] [--skip-hf]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import yaml

from benchd.records import RunSpec
from benchd.runner.prepare import load_version
from benchd.runner.zoo import build


def _time_p50_us(fn, queries: int) -> float:
    pc = time.perf_counter_ns
    for i in range(min(200, queries)):
        fn(i)
    samples = []
    for i in range(queries):
        t0 = pc()
        fn(i)
        samples.append(pc() - t0)
    return statistics.median(samples) / 1e3


def _write(folder: Path, inputs: list[dict]) -> None:
    (folder / "benchd.yaml").write_text(yaml.safe_dump({"inputs": inputs}, sort_keys=False))


def mlp_folders(root: Path, aoti: bool, hf: bool) -> tuple[torch.nn.Module, dict, dict[str, Path]]:
    model = build("mlp")
    example = (torch.randn(2, 64),)
    dims = ({0: torch.export.Dim("batch", min=1, max=1024)},)
    inputs = [{"name": "x", "shape": ["batch", 64], "range": [-1, 1]}]
    program = torch.export.export(model, example, dynamic_shapes=dims)
    folders = {}
    for fmt in ("export", "torchscript", "aoti", "pickle"):
        if fmt == "aoti" and not aoti:
            continue
        folder = root / "mlp" / fmt
        folder.mkdir(parents=True)
        if fmt == "export":
            torch.export.save(program, str(folder / "model.pt2"))
        elif fmt == "torchscript":
            torch.jit.save(torch.jit.trace(model, example), str(folder / "model.ts"))
        elif fmt == "aoti":
            torch._inductor.aoti_compile_and_package(program, package_path=str(folder / "model.pt2"))
        else:
            torch.save(model, str(folder / "model.pt"))
        _write(folder, inputs)
        folders[fmt] = folder
    return model, {"x": None}, folders


def bert_folders(root: Path, aoti: bool, hf: bool) -> tuple[torch.nn.Module, dict, dict[str, Path]]:
    import transformers

    config = transformers.BertConfig(
        vocab_size=1000,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    model = transformers.BertModel(config).eval()
    ids, mask = torch.randint(0, 1000, (2, 32)), torch.ones(2, 32, dtype=torch.int64)
    batch = torch.export.Dim("batch", min=1, max=256)
    kwargs = {"input_ids": ids, "attention_mask": mask}
    dims = {"input_ids": {0: batch}, "attention_mask": {0: batch}}
    inputs = [
        {"name": "input_ids", "shape": ["batch", 32], "dtype": "int64", "range": [0, 999]},
        {"name": "attention_mask", "shape": ["batch", 32], "dtype": "int64", "range": [1, 1]},
    ]
    with torch.no_grad():
        program = torch.export.export(model, (), kwargs, dynamic_shapes=dims, strict=False)
    folders = {}
    for fmt in ("export", "torchscript", "aoti", "hf"):
        if (fmt == "aoti" and not aoti) or (fmt == "hf" and not hf):
            continue
        folder = root / "bert" / fmt
        folder.mkdir(parents=True)
        if fmt == "export":
            torch.export.save(program, str(folder / "model.pt2"))
        elif fmt == "torchscript":
            traced = torch.jit.trace(model, example_kwarg_inputs=kwargs, strict=False)
            torch.jit.save(traced, str(folder / "model.ts"))
        elif fmt == "aoti":
            torch._inductor.aoti_compile_and_package(program, package_path=str(folder / "model.pt2"))
        else:
            model.save_pretrained(folder)
        _write(folder, inputs)
        folders[fmt] = folder
    return model, {"input_ids": None, "attention_mask": None}, folders


def measure(name, eager_model, folders, queries, rounds, batch) -> list[tuple[str, str, float, float]]:
    queries_by_fmt = {}
    eager_calls = None
    for fmt, folder in folders.items():
        spec = RunSpec(
            model=name, version=fmt, model_path=str(folder), allow_pickle=True, allow_native_code=True
        )
        version = load_version(spec, torch.device("cpu"))
        queries_by_fmt[f"benchd {fmt}"] = version.query(batch).query
        if eager_calls is None:  # the eager reference on the very same prepared tensors
            from benchd.runner.inputs import make_batches

            named, _ = make_batches(version.model_spec, version.samples, batch, seed=version.seed)
            eager_calls = [version.plan.build(b) for b in named]
    n = len(eager_calls)

    def eager(i: int) -> object:
        args, kwargs = eager_calls[i % n]
        return eager_model(*args, **kwargs)

    results: dict[str, list[float]] = {"eager (bare call)": [], **{k: [] for k in queries_by_fmt}}
    with torch.inference_mode():
        for _ in range(rounds):
            results["eager (bare call)"].append(_time_p50_us(eager, queries))
            for label, q in queries_by_fmt.items():
                results[label].append(_time_p50_us(q, queries))
    base = statistics.median(results["eager (bare call)"])
    return [(name, label, statistics.median(v), statistics.median(v) - base) for label, v in results.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument(
        "--skip-aoti", action="store_true", help="no AOTInductor build (needs a C++ compiler)"
    )
    parser.add_argument("--skip-hf", action="store_true", help="no transformers models")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory(prefix="benchd-formats-") as tmp:
        root = Path(tmp)
        model, _, folders = mlp_folders(root, not args.skip_aoti, not args.skip_hf)
        rows += measure("mlp", model, folders, args.queries, args.rounds, args.batch)
        if not args.skip_hf:
            model, _, folders = bert_folders(root, not args.skip_aoti, True)
            rows += measure("bert-tiny", model, folders, args.queries, args.rounds, args.batch)
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}, "
        f"p50 of {args.queries} queries, median of {args.rounds} interleaved rounds"
    )
    print(f"{'model':<10} {'path':<20} {'p50 us':>9} {'vs eager us':>12}")
    for name, label, p50, delta in rows:
        print(f"{name:<10} {label:<20} {p50:>9.1f} {delta:>+12.1f}")


if __name__ == "__main__":
    main()
