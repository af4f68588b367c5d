"""``edgercnn parity``: does the exported model detect what torchvision detects?

Runs torchvision eager and each candidate on the same images and compares *detections* (padded rows
are garbage by design): the deploy graph in torch, the portable ONNX in onnxruntime, and the
TensorRT-flavour ONNX in onnxruntime through the plugins' CPU kernels (``runtime.plugin_ops``).
Each reference detection is matched to one candidate detection of the same label, greedily by IoU
(``runtime.matching``); the report gives the share reproduced at IoU >= 0.99 with a score within
1e-3, the largest box / score / keypoint errors, the mean mask IoU after pasting (torchvision's
``paste_masks_in_image``), and COCO AP of every model when ground truth is available.

Every image is first brought to the graph's source size (all frames of a camera have one size), so
eager and candidates see the very same pixels; candidates get torchvision's own transform output.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from edgercnn.export.coco_eval import coco_aps
from edgercnn.export.deploy import DeployOptions, DeployRCNN
from edgercnn.export.deploy.errors import ExportError
from edgercnn.export.eager import Outputs, bgr_to_tensor, eager_detections, run_eager
from edgercnn.runtime.detections import Detections
from edgercnn.runtime.files import IMAGE_SUFFIXES
from edgercnn.runtime.images import load_image
from edgercnn.runtime.keypoints import decode_heatmaps
from edgercnn.runtime.matching import ParityTally
from torchvision.models.detection.roi_heads import paste_masks_in_image
from torchvision.models.detection.transform import resize_boxes, resize_keypoints

CANDIDATES = ("deploy", "portable", "tensorrt")
DEFAULT_IMAGES = 24


@torch.inference_mode()
def graph_inputs(model: torch.nn.Module, images: Sequence[np.ndarray]) -> torch.Tensor:
    """torchvision's transform output (normalized, resized, zero-padded) for same-size images."""
    image_list, _ = model.transform([bgr_to_tensor(im) for im in images])
    return image_list.tensors


def padded_to_detections(outputs: Sequence[np.ndarray], deploy: DeployRCNN) -> Outputs:
    """Graph outputs -> per-image detections in source pixels, in the form torchvision's postprocess
    gives them (so ``eager_detections`` reads eager and candidates alike)."""
    g = deploy.geometry
    valid, source = (g.valid_height, g.valid_width), (g.source_height, g.source_width)
    result: Outputs = []
    for image in range(len(outputs[0])):
        n = int(outputs[0][image])
        boxes = resize_boxes(torch.from_numpy(np.asarray(outputs[1][image, :n])), valid, source)
        det: dict[str, np.ndarray] = {
            "boxes": boxes.numpy(),
            "scores": np.asarray(outputs[2][image, :n]),
            "labels": np.asarray(outputs[3][image, :n]),
        }
        if deploy.kind == "maskrcnn":
            masks = torch.from_numpy(np.asarray(outputs[4][image, :n]))[:, None]
            det["masks"] = paste_masks_in_image(masks, boxes, source).numpy()
        if deploy.kind == "keypointrcnn":
            raw = np.asarray(outputs[4][image, :n])
            if deploy.options.keypoint_decode == "host":  # heatmaps: the runtime's decoder
                raw = decode_heatmaps(raw, np.asarray(outputs[1][image, :n]))
            kp = torch.from_numpy(np.array(raw))
            det["keypoints_scores"] = kp[..., 2].numpy().copy()
            kp[..., 2] = 1.0
            det["keypoints"] = resize_keypoints(kp, valid, source).numpy()
        result.append(det)
    return result


def run_candidate(
    infer: Callable[[np.ndarray], Sequence[np.ndarray]],
    model: torch.nn.Module,
    deploy: DeployRCNN,
    images: Sequence[np.ndarray],
    batch: int,
) -> Outputs:
    """Static-batch inference over all images (the last batch is filled with repeats, then dropped)."""
    detections: Outputs = []
    for start in range(0, len(images), batch):
        chunk = list(images[start : start + batch])
        real = len(chunk)
        chunk += [chunk[-1]] * (batch - real)
        outputs = infer(graph_inputs(model, chunk).numpy())
        detections += padded_to_detections(outputs, deploy)[:real]
    return detections


def candidate_runners(
    deploy: DeployRCNN, names: Sequence[str], work_dir: Path, batch: int, config_for: Callable[[str], dict]
) -> dict[str, Callable[[np.ndarray], Sequence[np.ndarray]]]:
    """One inference function per candidate name (exporting ONNX files into ``work_dir`` as needed)."""
    runners: dict[str, Callable[[np.ndarray], Sequence[np.ndarray]]] = {}
    for name in names:
        if name == "deploy":

            def run_deploy(x: np.ndarray) -> list[np.ndarray]:
                with torch.inference_mode():
                    return [t.numpy() for t in deploy(torch.from_numpy(x))]

            runners[name] = run_deploy
            continue
        import onnx
        from edgercnn.export.onnx_export import FILE_NAMES, export_onnx, session_for

        path = work_dir / FILE_NAMES[name]
        if not path.exists():
            export_onnx(deploy, path, config_for(name), flavour=name, batch=batch)
        session = session_for(onnx.load(str(path)), name)
        if session is None:
            raise ExportError(f"cannot run {path} here: runtime.plugin_ops (the plugins' CPU ops) is missing")
        runners[name] = lambda x, s=session: s.run(None, {"images": x})
    return runners


def _aps(kind: str, gt: dict[str, Any], detections: Sequence[Detections]) -> dict[str, float]:
    """COCO AP (0-1) per IoU type of ``kind``, as the report gives it."""
    return {iou: stats["AP"] for iou, stats in coco_aps(kind, gt, detections).items()}


def parity_report(
    model: torch.nn.Module,
    images: Sequence[np.ndarray],
    *,
    candidates: Sequence[str] = ("deploy", "portable"),
    batch: int = 1,
    gt: dict[str, Any] | None = None,
    work_dir: str | Path | None = None,
    config_for: Callable[[str], dict] | None = None,
    min_score: float = 0.05,
    deploy_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Eager vs each candidate on ``images`` (BGR, all of one size: the source size).

    ``deploy_options`` are extra ``DeployOptions`` fields (e.g. the keypoint search).
    """
    if not images:
        raise ExportError("no images to compare on")
    height, width = images[0].shape[:2]
    if any(im.shape[:2] != (height, width) for im in images):
        raise ExportError("parity images must all have the graph's source size")
    deploy = DeployRCNN(model.eval(), DeployOptions(height, width, **(deploy_options or {}))).eval()
    if config_for is None:
        from edgercnn.export import metadata

        def config_for(flavour: str) -> dict:
            names = metadata.default_class_names(deploy.num_classes)
            return metadata.build_config(
                deploy, builder="parity", class_names=names, batch=batch, flavour=flavour
            )

    report: dict[str, Any] = {
        "kind": deploy.kind,
        "images": len(images),
        "source_size": [width, height],
        "graph_input": [deploy.geometry.width, deploy.geometry.height],
        "batch": batch,
        "min_score": min_score,
        "candidates": {},
    }
    t0 = time.perf_counter()
    reference = run_eager(model, images, batch)
    report["eager_seconds"] = round(time.perf_counter() - t0, 2)
    reference_dets = [eager_detections(out, (height, width)) for out in reference]
    if gt:
        report["eager_ap"] = _aps(deploy.kind, gt, reference_dets)
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(work_dir) if work_dir else Path(tmp)
        runners = candidate_runners(deploy, candidates, where, batch, config_for)
        for name, infer in runners.items():
            t0 = time.perf_counter()
            outputs = run_candidate(infer, model, deploy, images, batch)
            seconds = time.perf_counter() - t0
            candidate_dets = [eager_detections(out, (height, width)) for out in outputs]
            tally = ParityTally(min_score=min_score)
            for ref, cand in zip(reference_dets, candidate_dets, strict=True):
                tally.add(ref, cand)
            entry = tally.summary()
            entry["seconds"] = round(seconds, 2)
            if gt:
                entry["ap"] = _aps(deploy.kind, gt, candidate_dets)
                entry["ap_delta_points"] = {
                    k: round(100 * (entry["ap"][k] - report["eager_ap"][k]), 3) for k in entry["ap"]
                }
            report["candidates"][name] = entry
    return report


def load_images(args: argparse.Namespace) -> tuple[list[np.ndarray], dict[str, Any] | None]:
    """Images (BGR) and COCO ground truth if any: --coco, --images, or the synthetic val split."""
    if args.coco:
        gt = json.loads(Path(args.coco).read_text())
        image_dir = Path(args.image_dir) if args.image_dir else Path(args.coco).parent
        infos = gt["images"][: args.limit]
        gt = {**gt, "images": infos}
        images = [_read(image_dir / info["file_name"]) for info in infos]
        return images, gt
    if args.images:
        folder = Path(args.images)
        if not folder.is_dir():
            raise ExportError(f"{folder}: not a folder of images")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[: args.limit]
        if not files:
            raise ExportError(f"{folder}: no {'/'.join(IMAGE_SUFFIXES)} images")
        return [_read(p) for p in files], None
    from edgercnn.export.refmodels.synthdata.dataset import build_split

    gt, images, _ = build_split(args.seed, "val", args.limit, 384, 288)
    return images, gt


def _read(path: Path) -> np.ndarray:
    return load_image(path)


def to_source_size(images: list[np.ndarray], size: tuple[int, int] | None) -> list[np.ndarray]:
    """All images at one size (``(height, width)``, default the first image's)."""
    height, width = size or images[0].shape[:2]
    return [im if im.shape[:2] == (height, width) else cv2.resize(im, (width, height)) for im in images]


def format_report(report: dict[str, Any]) -> str:
    (sw, sh), (gw, gh) = report["source_size"], report["graph_input"]
    lines = [
        f"{report['kind']}: {report['images']} images, source {sw}x{sh}, graph input {gw}x{gh}, "
        f"batch {report['batch']}",
    ]
    if "eager_ap" in report:
        lines.append("eager AP: " + ", ".join(f"{k} {100 * v:.2f}" for k, v in report["eager_ap"].items()))
    header = "| candidate | ref dets | matched@0.99 | share | max box err px | max score err | extra |"
    lines += [header, "|" + "---|" * 7]
    for name, c in report["candidates"].items():
        extra = []
        if "mean_mask_iou" in c:
            extra.append(f"mask IoU {c['mean_mask_iou']:.4f}")
        if "max_keypoint_error_px" in c:
            extra.append(
                f"kp max err {c['max_keypoint_error_px']:.2f}px, "
                f"{100 * c['keypoints_within_1px_share']:.2f}% within 1px"
            )
        if "ap" in c:
            extra.append(
                "AP "
                + ", ".join(f"{k} {100 * v:.2f} ({c['ap_delta_points'][k]:+.2f})" for k, v in c["ap"].items())
            )
        lines.append(
            f"| {name} | {c['reference_detections']} | {c['matched_strict']} | "
            f"{100 * c['matched_share']:.2f}% | {c['max_box_error_px']:.4f} | {c['max_score_error']:.2e} | "
            f"{'; '.join(extra)} |"
        )
    return "\n".join(lines)
