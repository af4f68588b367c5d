"""Runtime pre/post-processing cost: the issue's two targets.

1. Mask paste of 100 detections into a 1920x1080 frame on one core (goal <= 5 ms), compared with
   torchvision's ``paste_masks_in_image`` on the same input when torch is installed.
2. Pre+post share of frame time for a Mask R-CNN on 1280x720 frames with 100 detections (goal
   <= 5 %): preprocess of a 1280x720 frame into the model's input and postprocess of 100 detections
   (boxes, masks pasted, score filter) are timed; infer is the model's own time on that input.
   The graph's outputs are replaced by 100 synthetic detections so that postprocessing always
   has 100 to paste, whatever the trained model finds in the bench frame.

    python benchmarks/bench_runtime_postprocess.py [--model a_mask_rcnn_exported_for_1280x720.onnx]

Without ``--model`` it exports the reference Mask R-CNN for 1280x720 itself (needs torch).

Writes its section of docs/benchmarks.md (between its own markers) unless --no-write.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from doc_sections import write_section
from edgercnn.runtime.config import ModelConfig
from edgercnn.runtime.postprocess import paste_masks, postprocess
from edgercnn.runtime.preprocess import ImageTransform, prepare_batch

REPO = Path(__file__).resolve().parents[1]

MARK_START = "<!-- bench_runtime_postprocess:start -->"
MARK_END = "<!-- bench_runtime_postprocess:end -->"


def one_core() -> str:
    """One thread for OpenCV (numpy's element-wise ops are single-threaded already). Not pinned to a
    fixed core: on a shared machine that core may be the busy one."""
    cv2.setNumThreads(1)
    load = os.getloadavg()[0]
    cpus = os.cpu_count()
    return f"single-threaded (cv2.setNumThreads(1)), thread CPU time, load average {load:.1f} on {cpus} CPUs"


def surveillance_boxes(rng: np.random.Generator, k: int, w: int, h: int) -> np.ndarray:
    """People/cars/plates at many distances: sides log-uniform in 16..480 px, some cut by the border."""
    bw = np.exp(rng.uniform(np.log(16), np.log(480), k))
    bh = bw * np.exp(rng.uniform(np.log(0.4), np.log(2.5), k))
    x1 = rng.uniform(-0.05 * w, w * 0.98, k)
    y1 = rng.uniform(-0.05 * h, h * 0.98, k)
    boxes = np.stack([x1, y1, x1 + bw, y1 + bh], 1)
    return np.clip(boxes, 0, [w, h, w, h]).astype(np.float32)


def mask_probabilities(rng: np.random.Generator, k: int, m: int = 28) -> np.ndarray:
    coarse = rng.uniform(0, 1, (k, 6, 6)).astype(np.float32)
    return np.stack([cv2.resize(c, (m, m), interpolation=cv2.INTER_CUBIC) for c in coarse]).clip(0, 1)


def timed(fn, repeats: int) -> np.ndarray:
    """Milliseconds of this thread's CPU time per call: on a shared machine, wall time also counts
    the time other processes hold the core; CPU time of a single-threaded call does not."""
    fn()
    out = []
    for _ in range(repeats):
        t0 = time.thread_time()
        fn()
        out.append(time.thread_time() - t0)
    return np.array(out) * 1000.0


def bench_paste(repeats: int) -> list[str]:
    rng = np.random.default_rng(0)
    w, h, k = 1920, 1080, 100
    boxes = surveillance_boxes(rng, k, w, h)
    masks = mask_probabilities(rng, k)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    crops_ms = timed(lambda: paste_masks(masks, boxes, (h, w)), repeats)

    def full_stack() -> None:
        crops = paste_masks(masks, boxes, (h, w))
        stack = np.zeros((k, h, w), bool)
        for i, c in enumerate(crops):
            stack[i, c.top : c.top + c.mask.shape[0], c.left : c.left + c.mask.shape[1]] = c.mask

    full_ms = timed(full_stack, max(3, repeats // 4))
    rows = [
        f"| runtime paste (crops inside boxes) | {np.median(crops_ms):.2f} | "
        f"{np.percentile(crops_ms, 90):.2f} |",
        f"| runtime paste + full (100, 1080, 1920) bool stack | {np.median(full_ms):.2f} | "
        f"{np.percentile(full_ms, 90):.2f} |",
    ]
    try:
        import torch
        from torchvision.models.detection.roi_heads import paste_masks_in_image

        torch.set_num_threads(1)
        tm, tb = torch.from_numpy(masks)[:, None], torch.from_numpy(boxes)
        ref_ms = timed(lambda: paste_masks_in_image(tm, tb, (h, w)) > 0.5, max(3, repeats // 10))
        rows.append(
            f"| torchvision paste_masks_in_image (> 0.5), 1 thread | {np.median(ref_ms):.2f} | "
            f"{np.percentile(ref_ms, 90):.2f} |"
        )
    except ModuleNotFoundError:
        rows.append("| torchvision paste_masks_in_image | (torch not installed) | |")
    head = [
        f"Mask paste: {k} detections into 1920x1080, box sides log-uniform 16..480 px "
        f"(median box {np.median(area):.0f} px², total {area.sum() / 1e6:.2f} Mpx), {repeats} runs.",
        "",
        "| what | median CPU ms | p90 CPU ms |",
        "| --- | ---: | ---: |",
    ]
    return head + rows


def synthetic_outputs(
    config: ModelConfig, transform: ImageTransform, rng: np.random.Generator, k: int = 100
) -> dict[str, np.ndarray]:
    """100 detections as the graph would give them: boxes drawn in frame pixels, mapped to the input."""
    n = config.detections_per_img
    frame_boxes = surveillance_boxes(rng, n, transform.original_width, transform.original_height)
    scale = np.array([transform.resized_width / transform.original_width,
                      transform.resized_height / transform.original_height] * 2, np.float32)  # fmt: skip
    out = {
        "num_detections": np.array([k], np.int64),
        "boxes": (frame_boxes * scale)[None],
        "scores": np.linspace(0.99, 0.3, n, dtype=np.float32)[None],
        "labels": rng.integers(1, len(config.class_names), n)[None].astype(np.int64),
    }
    if config.has_masks:
        out["masks"] = mask_probabilities(rng, n)[None]
    if config.has_keypoints:
        out["keypoints"] = rng.uniform(0, 200, (1, n, 17, 3)).astype(np.float32)
    return out


def timed_wall(fn, repeats: int) -> tuple[np.ndarray, np.ndarray]:
    """(wall ms, process CPU ms over all threads) per call, for the multi-threaded inference."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return np.array(wall) * 1000.0, np.array(cpu) * 1000.0


def bench_share(model: Path | None, repeats: int, infer_runs: int) -> list[str]:
    rng = np.random.default_rng(1)
    frame = cv2.resize(rng.integers(0, 256, (46, 81, 3), dtype=np.uint8), (1280, 720))
    if model is None:
        return ["Pre+post share: no Mask R-CNN model given (--model); not measured."]
    config = ModelConfig.from_model_file(model)
    if config.detections_per_img < 100:
        return [
            f"Pre+post share: {model.name} keeps only {config.detections_per_img} detections; not measured."
        ]
    batch, transforms = prepare_batch([frame], config, batch_size=config.batch)
    outputs = synthetic_outputs(config, transforms[0], rng)
    pre_ms = timed(lambda: prepare_batch([frame], config, batch_size=config.batch), repeats)
    post_ms = timed(lambda: postprocess(outputs, transforms, config), repeats)
    from edgercnn.runtime.backends.base import open_backend

    backend = open_backend(model, config=config, device="cpu")
    wall_ms, cpu_ms = timed_wall(lambda: backend.infer(batch), infer_runs)
    pre, post = float(np.median(pre_ms)), float(np.median(post_ms))
    infer_wall, infer_cpu = float(np.median(wall_ms)), float(np.median(cpu_ms))
    share_wall = 100 * (pre + post) / (pre + post + infer_wall)
    share_cpu = 100 * (pre + post) / (pre + post + infer_cpu)
    spec = config.input
    return [
        f"Pre+post share: {model.name} ({config.architecture}, {config.precision}, "
        f"input {spec.width}x{spec.height}), 1280x720 frame, 100 detections with masks pasted, "
        f"{backend.name} with its default threads; pre/post single-threaded.",
        "",
        "| stage | median ms |",
        "| --- | ---: |",
        f"| preprocess (1280x720 -> {spec.valid_width}x{spec.valid_height} in {spec.width}x{spec.height}), "
        f"CPU | {pre:.2f} |",
        f"| infer, wall | {infer_wall:.1f} |",
        f"| infer, CPU over all threads | {infer_cpu:.1f} |",
        f"| postprocess (100 detections, masks pasted), CPU | {post:.2f} |",
        f"| **pre+post share of CPU work** (infer CPU over all threads) | **{share_cpu:.2f} %** |",
        f"| pre+post share of wall time (inflated infer wall on a shared machine) | {share_wall:.2f} % |",
    ]


def export_reference_model(folder: Path) -> tuple[Path, str]:
    """The reference Mask R-CNN exported for 1280x720 frames (needs torch: the build host's extra).

    The bundled trained weights when ``models/ref_maskrcnn.json`` exists, else the same
    architecture with seeded random weights: timing depends on the architecture and input size,
    and postprocessing is fed 100 detections either way.
    """
    import torch
    from edgercnn.export import metadata
    from edgercnn.export.deploy import DeployOptions, DeployRCNN
    from edgercnn.export.onnx_export import export_onnx
    from edgercnn.export.refmodels.architectures import (
        SYNTH_CLASS_NAMES,
        build_from_card,
        build_model,
        load_card,
    )

    card = REPO / "models" / "ref_maskrcnn.json"
    if card.exists():
        model, what = build_from_card(load_card(card)), "trained weights (models/ref_maskrcnn.json)"
    else:
        torch.manual_seed(0)
        model, what = build_model("ref_maskrcnn").eval(), "seeded random weights (no bundled card found)"
    deploy = DeployRCNN(model, DeployOptions(720, 1280))
    config = metadata.build_config(deploy, builder="ref_maskrcnn", class_names=SYNTH_CLASS_NAMES)
    path = folder / "ref_maskrcnn_1280x720.onnx"
    export_onnx(deploy, path, config)
    return path, f"ref_maskrcnn exported for 1280x720 by this script, {what}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="a Mask R-CNN ONNX exported for 1280x720")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--infer-runs", type=int, default=10)
    parser.add_argument("--no-export", action="store_true", help="without --model: skip the share benchmark")
    parser.add_argument(
        "--no-write", action="store_true", help="print only, do not update docs/benchmarks.md"
    )
    args = parser.parse_args()
    pinning = one_core()
    model_note = None
    if args.model is None and not args.no_export:
        folder = Path(tempfile.mkdtemp(prefix="bench_runtime_"))
        print("exporting the reference Mask R-CNN for 1280x720 ...", file=sys.stderr)
        args.model, model_note = export_reference_model(folder)
    command = "python benchmarks/bench_runtime_postprocess.py" + (
        f" --model {args.model}" if args.model and not model_note else ""
    )
    lines = [
        f"`{command}`; {platform.processor() or platform.machine()}, {pinning}.",
        "",
        *bench_paste(args.repeats),
        "",
        *bench_share(args.model, args.repeats, args.infer_runs),
    ]
    if model_note:
        lines += ["", f"Model: {model_note}."]
    print("\n".join(lines))
    if not args.no_write:
        doc = write_section(MARK_START, MARK_END, "Runtime pre/post-processing", lines)
        print(f"\nwrote {doc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
