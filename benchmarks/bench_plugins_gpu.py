"""Plugin kernels vs torchvision: the issue's two speed targets, on the GPU or on the CPU.

1. Fused multi-level RoIAlign vs torchvision ``MultiScaleRoIAlign``: 1000 RoIs, 256 channels, 7x7,
   sampling ratio 2, four FPN levels of an 800x1344 input (strides 4-32). Target on the GPU: >= 3x.
2. Batched NMS vs torchvision ``batched_nms``: 5000 boxes, per-level idxs (the RPN case), IoU 0.7,
   1000 kept. Target on the GPU: no slower.

``--device cuda`` times the CUDA kernels (C entry points via ``plugins.cuda_kernels``) with CUDA
events; ``--device cpu`` times the CPU kernels (``runtime.plugin_ops``) against torchvision's CPU ops,
both on one thread, in thread CPU time.
Both check that the outputs agree with torchvision before timing.

    python benchmarks/bench_plugins_gpu.py --device cuda|cpu [--repeats 50] [--no-write]

Writes its section of docs/benchmarks.md (between markers named after the device) unless --no-write.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from doc_sections import write_section
from torchvision.ops import MultiScaleRoIAlign, batched_nms

REPO = Path(__file__).resolve().parents[1]

IMAGE_HW = (800, 1344)
STRIDES = (4, 8, 16, 32)
SCALES = [1.0 / s for s in STRIDES]


def make_roi_inputs(device: str, channels: int, rois: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    h, w = IMAGE_HW
    features = [torch.randn(1, channels, h // s, w // s, generator=g) for s in STRIDES]
    xy = torch.rand(rois, 2, generator=g) * torch.tensor([w * 0.9, h * 0.9])
    wh = torch.rand(rois, 2, generator=g) ** 2 * torch.tensor([w * 0.5, h * 0.5]) + 4
    boxes = torch.cat([xy, xy + wh], dim=1)
    return [f.to(device) for f in features], boxes[None].to(device)


def make_nms_inputs(device: str, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    h, w = IMAGE_HW
    xy = torch.rand(count, 2, generator=g) * torch.tensor([w * 0.9, h * 0.9])
    boxes = torch.cat([xy, xy + torch.rand(count, 2, generator=g) * 200 + 8], dim=1)
    scores = torch.rand(count, generator=g)
    levels = torch.randint(0, 5, (count,), generator=g)
    return boxes.to(device), scores.to(device), levels.to(device)


def time_ms(fn: Callable[[], object], device: str, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    if device == "cuda":
        torch.cuda.synchronize()
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end))
    else:
        # CPU time of this thread: both sides run on one thread (torch.set_num_threads(1) in main), and
        # thread time is robust on a shared machine and blind to idle OpenMP workers spinning.
        for _ in range(repeats):
            t0 = time.thread_time()
            fn()
            samples.append((time.thread_time() - t0) * 1e3)
    return statistics.median(samples)


def roi_functions(device: str, channels: int, rois: int) -> tuple[Callable, Callable, float]:
    features, boxes = make_roi_inputs(device, channels, rois)
    pooler = MultiScaleRoIAlign([str(i) for i in range(4)], 7, 2)
    named = OrderedDict((str(i), f) for i, f in enumerate(features))

    def reference() -> torch.Tensor:
        return pooler(named, [boxes[0]], [IMAGE_HW])

    if device == "cuda":
        from edgercnn.plugins.cuda_kernels import CudaKernels

        kernels = CudaKernels()

        def fused_cuda() -> torch.Tensor:
            return kernels.multi_level_roi_align(boxes, features, (7, 7), SCALES, 2, False)

        fused: Callable[[], object] = fused_cuda
        got = fused_cuda()[0]
    else:
        from edgercnn.runtime.plugin_ops import load_cpu_kernels

        cpu = load_cpu_kernels()
        np_boxes, np_features = boxes.numpy(), [f.numpy() for f in features]

        def fused_cpu() -> np.ndarray:
            return cpu.multi_level_roi_align(np_boxes, np_features, 7, 7, SCALES, 2, False)

        fused = fused_cpu
        got = torch.from_numpy(fused_cpu()[0])
    error = float((got - reference()).abs().max())
    return fused, reference, error


def nms_functions(device: str, count: int) -> tuple[Callable, Callable, bool]:
    boxes, scores, levels = make_nms_inputs(device, count)
    iou, kept = 0.7, 1000

    def reference() -> torch.Tensor:
        return batched_nms(boxes, scores, levels, iou)[:kept]

    if device == "cuda":
        from edgercnn.plugins.cuda_kernels import CudaKernels

        kernels = CudaKernels()
        workspace = torch.empty(kernels.nms_workspace(1, count, -1, 0), dtype=torch.uint8, device="cuda")
        b, s, i = boxes[None], scores[None], levels[None]

        def ours_cuda() -> tuple:
            return kernels.batched_nms(b, s, i, iou, float("-inf"), kept, -1, workspace=workspace)

        ours: Callable[[], object] = ours_cuda
        keep, n = ours_cuda()
        got = keep[0, : int(n[0])].cpu()
    else:
        from edgercnn.runtime.plugin_ops import load_cpu_kernels

        cpu = load_cpu_kernels()
        nb, ns, ni = boxes[None].numpy(), scores[None].numpy(), levels[None].numpy()

        def ours_cpu() -> tuple:
            return cpu.batched_nms(nb, ns, ni, iou, float("-inf"), kept, -1)

        ours = ours_cpu
        keep_np, n_np = ours_cpu()
        got = torch.from_numpy(keep_np[0, : int(n_np[0])])
    # Scores are distinct, so the contract's order equals torchvision's whatever algorithm it uses.
    same = torch.equal(got, reference().cpu())
    return ours, reference, same


def describe_device(device: str) -> str:
    if device == "cuda":
        return f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda}, torch {torch.__version__})"
    cpu = platform.processor() or platform.machine()
    return f"{cpu}, torch {torch.__version__}, one thread each, thread CPU time"


def run(device: str, repeats: int, channels: int, rois: int, boxes: int) -> list[str]:
    fused, pooler, roi_error = roi_functions(device, channels, rois)
    fused_ms, pooler_ms = time_ms(fused, device, repeats), time_ms(pooler, device, repeats)
    ours, reference, nms_same = nms_functions(device, boxes)
    ours_ms, reference_ms = time_ms(ours, device, repeats), time_ms(reference, device, repeats)
    kind = "CUDA kernels (C API)" if device == "cuda" else "CPU kernels (ctypes, one thread)"
    return [
        f"`python benchmarks/bench_plugins_gpu.py --device {device} --repeats {repeats}`; "
        f"{describe_device(device)}.",
        "",
        f"| op | {kind} ms | torchvision ms | speed-up | agreement |",
        "| --- | ---: | ---: | ---: | --- |",
        f"| multi-level RoIAlign, {rois} RoIs, {channels} ch, 7x7, ratio 2, 4 levels of 800x1344 "
        f"| {fused_ms:.3f} | {pooler_ms:.3f} | {pooler_ms / fused_ms:.2f}x | max abs diff {roi_error:.1e} |",
        f"| batched NMS, {boxes} boxes, 5 level idxs, IoU 0.7, top 1000 "
        f"| {ours_ms:.3f} | {reference_ms:.3f} | {reference_ms / ours_ms:.2f}x "
        f"| indices {'identical' if nms_same else 'DIFFER'} |",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--device", choices=["cuda", "cpu"], default="cuda" if torch.cuda.is_available() else "cpu"
    )
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--rois", type=int, default=1000)
    parser.add_argument("--boxes", type=int, default=5000)
    parser.add_argument(
        "--no-write", action="store_true", help="print only, do not update docs/benchmarks.md"
    )
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA GPU here: run with --device cpu, or on a machine with a GPU", file=sys.stderr)
        return 2
    if args.device == "cpu":
        torch.set_num_threads(1)
    lines = run(args.device, args.repeats, args.channels, args.rois, args.boxes)
    print("\n".join(lines))
    if not args.no_write:
        doc = write_section(
            f"<!-- bench_plugins_gpu:{args.device} start -->",
            f"<!-- bench_plugins_gpu:{args.device} end -->",
            "Plugin kernels on the GPU" if args.device == "cuda" else "Plugin kernels on the CPU",
            lines,
        )
        print(f"\nwrote {doc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
