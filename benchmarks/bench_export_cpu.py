"""Portable ONNX in onnxruntime vs torchvision eager vs torchvision's own (TorchScript) ONNX path.

    python benchmarks/bench_export_cpu.py                      # ref_fasterrcnn (card or random weights)
    python benchmarks/bench_export_cpu.py --arch fasterrcnn_resnet50_fpn --size 640x480 --runs 5

One process, one thread for everything (``torch.set_num_threads(1)``, onnxruntime
``intra_op_num_threads=1``), the same model and the same image: on a shared machine the thread
CPU time of that one thread measures the work; wall time is printed too. Three ways to run it:

- **eager**: ``model([image])``, torchvision's inference (transform included);
- **naive ONNX**: ``torch.onnx.export(model, dynamo=False)``, torchvision's documented ONNX path
  (TorchScript tracing with its ONNX-specific code paths), in onnxruntime;
- **edgercnn portable ONNX**: the static-shape deploy graph exported with ``dynamo=True``, in
  onnxruntime, plus the host-side normalization it needs (the source size is the graph's valid size,
  so no resize is needed).

The markdown table goes to stdout and replaces this benchmark's section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from doc_sections import write_section
from edgercnn.export import metadata
from edgercnn.export.deploy import DeployOptions, DeployRCNN
from edgercnn.export.onnx_export import export_onnx
from edgercnn.export.refmodels import architectures

REPO = Path(__file__).resolve().parents[1]

SECTION = "bench_export_cpu"


def measure(fn: Callable[[], object], runs: int, warmup: int = 1) -> tuple[float, float]:
    """Median (thread CPU ms, wall ms) over ``runs`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    cpu, wall = [], []
    for _ in range(runs):
        c0, w0 = time.thread_time(), time.perf_counter()
        fn()
        cpu.append((time.thread_time() - c0) * 1e3)
        wall.append((time.perf_counter() - w0) * 1e3)
    return statistics.median(cpu), statistics.median(wall)


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def load_model(args: argparse.Namespace) -> tuple[torch.nn.Module, str]:
    card_path = REPO / "models" / f"{args.arch}.json"
    if args.arch in architectures.ARCHITECTURES and card_path.exists() and not args.random_weights:
        return architectures.build_from_card(
            architectures.load_card(card_path)
        ), f"trained weights ({card_path.name})"
    torch.manual_seed(0)
    return architectures.build_model(args.arch).eval(), "seeded random weights"


def naive_export(model: torch.nn.Module, image: torch.Tensor, path: Path) -> None:
    """torchvision's TorchScript-based ONNX export, as its documentation shows it."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, ([image],), str(path), dynamo=False, opset_version=17, do_constant_folding=True
        )


def run(args: argparse.Namespace) -> list[str]:
    torch.set_num_threads(1)
    model, weights = load_model(args)
    width, height = (int(v) for v in args.size.split("x")) if args.size else (None, None)
    if width is None:
        height, width = int(model.transform.min_size[-1]), int(model.transform.max_size)
    deploy = DeployRCNN(model, DeployOptions(height, width)).eval()
    g = deploy.geometry
    generator = torch.Generator().manual_seed(1)
    image = torch.nn.functional.interpolate(
        torch.rand((1, 3, height // 16, width // 16), generator=generator),
        size=(height, width),
        mode="bilinear",
    )[0]
    mean = np.asarray(deploy.mean, dtype=np.float32).reshape(3, 1, 1)
    std = np.asarray(deploy.std, dtype=np.float32).reshape(3, 1, 1)
    rgb = image.numpy()

    with tempfile.TemporaryDirectory() as tmp:
        portable_path, naive_path = Path(tmp) / "model.onnx", Path(tmp) / "naive.onnx"
        config = metadata.build_config(
            deploy, builder=args.arch, class_names=metadata.default_class_names(deploy.num_classes)
        )
        t0 = time.perf_counter()
        export_onnx(deploy, portable_path, config)
        portable_export_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        naive_export(model, image, naive_path)
        naive_export_s = time.perf_counter() - t0
        portable, naive = session(portable_path), session(naive_path)

        def eager() -> object:
            with torch.inference_mode():
                return model([image])

        def run_portable() -> object:
            x = np.zeros((1, 3, g.height, g.width), dtype=np.float32)
            x[0, :, : g.valid_height, : g.valid_width] = (rgb - mean) / std
            return portable.run(None, {"images": x})

        def run_naive() -> object:
            return naive.run(None, {naive.get_inputs()[0].name: rgb})

        detections = {
            "eager": len(eager()[0]["scores"]),
            "portable": int(run_portable()[0][0]),
            "naive": len(run_naive()[1]),
        }
        results = {name: measure(fn, args.runs) for name, fn in
                   (("eager", eager), ("naive", run_naive), ("portable", run_portable))}  # fmt: skip

    eager_cpu, naive_cpu, ours_cpu = results["eager"][0], results["naive"][0], results["portable"][0]
    load = " ".join(f"{v:.1f}" for v in os.getloadavg())
    lines = [
        f"`python benchmarks/bench_export_cpu.py --arch {args.arch} --size {width}x{height} "
        f"--runs {args.runs}`; {platform.machine()}, 1 thread each (torch and onnxruntime), "
        f"median of {args.runs} runs after a warm-up, "
        f"load average {load}. Model {args.arch} ({weights}), {width}x{height} image, graph input "
        f"{g.width}x{g.height}. Detections: eager {detections['eager']}, naive {detections['naive']}, "
        f"portable {detections['portable']}.",
        "",
        "| path | median thread CPU ms | median wall ms | speed-up vs eager (CPU) | export s |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| torchvision eager | {eager_cpu:.1f} | {results['eager'][1]:.1f} | 1.00x | |",
        f"| naive torch.onnx.export(dynamo=False) in onnxruntime | {naive_cpu:.1f} | "
        f"{results['naive'][1]:.1f} | {eager_cpu / naive_cpu:.2f}x | {naive_export_s:.1f} |",
        f"| edgercnn portable ONNX in onnxruntime | {ours_cpu:.1f} | {results['portable'][1]:.1f} | "
        f"{eager_cpu / ours_cpu:.2f}x | {portable_export_s:.1f} |",
        "",
        f"Ratios (thread CPU): portable vs eager **{eager_cpu / ours_cpu:.2f}x** (goal >= 2.0x), "
        f"portable vs naive ONNX **{naive_cpu / ours_cpu:.2f}x** (goal >= 1.3x).",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="ref_fasterrcnn")
    p.add_argument("--size", help="WIDTHxHEIGHT (default: the model's max_size x min_size)")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--random-weights", action="store_true")
    p.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = p.parse_args(argv)
    lines = run(args)
    print("\n".join(lines))
    if not args.no_write:
        write_section(
            f"<!-- {SECTION}:start -->",
            f"<!-- {SECTION}:end -->",
            "Export: portable ONNX vs torchvision eager vs naive ONNX (CPU)",
            lines,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
