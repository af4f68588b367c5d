"""CPU cost of the two custom ops: portable ONNX translation in onnxruntime vs the torch reference.

Cases are the sizes a Faster/Mask R-CNN at 512x512 gives the ops: box-head RoIAlign (1000 RoIs,
4 FPN levels, 256 channels, 7x7), mask-head RoIAlign (100 RoIs, 14x14), RPN NMS (5 levels of
candidates, IoU 0.7) and detection NMS (1000 proposals x 90 classes, about 1000 above the 0.05
score threshold). RoIAlign is measured with both per-level strategies of the portable translation
("gather": each RoI pooled once from its level; "select": every level pools all RoIs, Where picks).
Both sides run single-threaded so that figures do not depend on the other load of the machine.

    python benchmarks/bench_ops_cpu.py [--repeat 10]

Prints a markdown table: median time per call of torchvision eager (what torchvision's RoIHeads /
RPN do for the same work), the torch reference op (``torch.ops.edgercnn.*``), and the portable
ONNX in onnxruntime, with the speed-up over eager and the largest difference between the
reference and the ONNX output on the benchmark input.
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
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import torchvision
from edgercnn.export.ops import batched_nms, multi_level_roi_align, onnx_translation, translation_table
from torchvision.ops import MultiScaleRoIAlign

REPO = Path(__file__).resolve().parents[1]

IMAGE = 512
STRIDES = (4, 8, 16, 32)


class RoIAlign(torch.nn.Module):
    def __init__(self, output_size: int):
        super().__init__()
        self.output_size = output_size
        self.names = [str(s) for s in STRIDES]
        self.torchvision_pooler = MultiScaleRoIAlign(self.names, output_size, 2)

    def forward(self, rois, *features):
        scales = [1.0 / s for s in STRIDES]
        return multi_level_roi_align(rois, features, (self.output_size,) * 2, scales, 2)

    def torchvision_eager(self, rois, *features):
        """What torchvision's RoIHeads does: the MultiScaleRoIAlign module on a list of boxes."""
        maps = dict(zip(self.names, features, strict=True))
        return self.torchvision_pooler(maps, list(rois), [(IMAGE, IMAGE)] * rois.shape[0])


class NMS(torch.nn.Module):
    def __init__(self, iou: float, score_threshold: float, max_output: int):
        super().__init__()
        self.args = (iou, score_threshold, max_output)

    def forward(self, boxes, scores, idxs):
        return batched_nms(boxes, scores, idxs, *self.args)

    def torchvision_eager(self, boxes, scores, idxs):
        """What torchvision's postprocessing does: threshold, batched_nms, keep the best."""
        iou, score_threshold, max_output = self.args
        keeps = []
        for image in range(boxes.shape[0]):
            cand = torch.where(scores[image] > score_threshold)[0]
            kept = torchvision.ops.batched_nms(
                boxes[image, cand], scores[image, cand], idxs[image, cand], iou
            )
            keeps.append(cand[kept[:max_output]])
        return keeps


def roi_inputs(count: int, channels: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    xy = torch.rand(1, count, 2, generator=gen) * IMAGE * 0.8
    wh = torch.exp(torch.rand(1, count, 2, generator=gen) * 5.0 + 1.5)  # 4.5 .. 665 px: all levels
    rois = torch.cat([xy, (xy + wh).clamp(max=IMAGE)], dim=-1)
    features = [torch.randn(1, channels, IMAGE // s, IMAGE // s, generator=gen) for s in STRIDES]
    return (rois, *features)


def nms_inputs(count: int, classes: int, keep_share: float, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    xy = torch.rand(1, count, 2, generator=gen) * IMAGE
    wh = torch.rand(1, count, 2, generator=gen) * 120 + 4
    boxes = torch.cat([xy, xy + wh], dim=-1)
    scores = torch.rand(1, count, generator=gen)
    scores = torch.where(torch.rand(1, count, generator=gen) < keep_share, scores * 0.9 + 0.1, scores * 0.04)
    idxs = torch.randint(0, classes, (1, count), generator=gen)
    return boxes, scores, idxs


def export_session(module: torch.nn.Module, example: tuple, path: Path) -> ort.InferenceSession:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        torch.onnx.export(
            module.eval(), example, dynamo=True, custom_translation_table=translation_table("portable")
        ).save(str(path))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def median_ms(call: Callable[[], object], repeat: int) -> float:
    for _ in range(3):
        call()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def check_equal(module: torch.nn.Module, session: ort.InferenceSession, example: tuple) -> float:
    """Largest difference between the two sides on the benchmark input (they must agree)."""
    expected = module(*example)
    expected = expected if isinstance(expected, tuple) else (expected,)
    feeds = {i.name: t.numpy() for i, t in zip(session.get_inputs(), example, strict=True)}
    got = session.run(None, feeds)
    return max(
        float(np.abs(g.astype(np.float64) - e.numpy()).max()) for g, e in zip(got, expected, strict=True)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    cases = [
        ("RoIAlign box head: 1000 RoIs, 4 levels, C=256, 7x7", RoIAlign(7), roi_inputs(1000, 256, gen)),
        ("RoIAlign mask head: 100 RoIs, 4 levels, C=256, 14x14", RoIAlign(14), roi_inputs(100, 256, gen)),
        (
            "NMS RPN: 4000 boxes, 5 levels, IoU 0.7, keep 1000",
            NMS(0.7, 0.0, 1000),
            nms_inputs(4000, 5, 1.0, gen),
        ),
        (
            "NMS detections: 90000 boxes, 90 classes, IoU 0.5, keep 100",
            NMS(0.5, 0.05, 100),
            nms_inputs(90000, 90, 0.011, gen),
        ),
    ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for index, (name, module, example) in enumerate(cases):
            torch_ms = median_ms(lambda m=module, e=example: m(*e), args.repeat)
            eager_ms = median_ms(lambda m=module, e=example: m.torchvision_eager(*e), args.repeat)
            strategies = ["gather", "select"] if isinstance(module, RoIAlign) else ["-"]
            for strategy in strategies:
                if strategy != "-":
                    onnx_translation.PORTABLE_LEVEL_STRATEGY = strategy
                session = export_session(module, example, Path(tmp) / f"case{index}_{strategy}.onnx")
                error = check_equal(module, session, example)
                feeds = {i.name: t.numpy() for i, t in zip(session.get_inputs(), example, strict=True)}
                onnx_ms = median_ms(lambda s=session, f=feeds: s.run(None, f), args.repeat)
                rows.append((name, strategy, eager_ms, torch_ms, onnx_ms, error))
            onnx_translation.PORTABLE_LEVEL_STRATEGY = "gather"
    machine = platform.processor() or platform.machine()
    load = os.getloadavg()[0]
    print(f"torch {torch.__version__}, onnxruntime {ort.__version__}, {machine}, 1 thread each,")
    print(f"load average {load:.1f} on {os.cpu_count()} CPUs, median of {args.repeat} calls\n")
    print(
        "| case | strategy | torchvision eager | torch reference | portable ONNX, ORT | vs eager | max diff |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for name, strategy, eager_ms, torch_ms, onnx_ms, error in rows:
        times = f"{eager_ms:.2f} ms | {torch_ms:.2f} ms | {onnx_ms:.2f} ms | {eager_ms / onnx_ms:.2f}x"
        print(f"| {name} | {strategy} | {times} | {error:.1e} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
