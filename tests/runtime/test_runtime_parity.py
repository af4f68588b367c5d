"""The runtime on a real exported Mask R-CNN reproduces torchvision eager at the detection level.

Whole chain: BGR frame -> runtime preprocessing -> portable ONNX in onnxruntime -> runtime
postprocessing (boxes to frame pixels, masks pasted), against torchvision's own inference on the
same frame, matched with ``runtime.matching`` (same label, IoU). The bundled trained model is used
when its card is there; otherwise the same architecture with seeded random weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from edgercnn.export import metadata
from edgercnn.export.deploy import DeployOptions, DeployRCNN
from edgercnn.export.onnx_export import export_onnx
from edgercnn.export.parity import run_eager
from edgercnn.export.refmodels.architectures import SYNTH_CLASS_NAMES, build_from_card, build_model, load_card
from edgercnn.runtime.detector import Detector
from edgercnn.runtime.matching import ParityTally, match_detections

from tests.cli import verb
from tests.paths import REPO_ROOT

run_main = verb("run")

REPO = REPO_ROOT
SOURCE_HW = (288, 384)


def _eager_model(name: str) -> torch.nn.Module:
    card = REPO / "models" / f"{name}.json"
    if card.exists():
        return build_from_card(load_card(card))
    torch.manual_seed(0)
    return build_model(name).eval()


def _export(name: str, folder: Path) -> tuple[torch.nn.Module, Path]:
    model = _eager_model(name)
    deploy = DeployRCNN(model, DeployOptions(*SOURCE_HW))
    class_names = SYNTH_CLASS_NAMES[: deploy.num_classes]
    keypoint_names = [f"kp{i}" for i in range(17)] if deploy.kind == "keypointrcnn" else None
    config = metadata.build_config(
        deploy, builder=name, class_names=class_names, keypoint_names=keypoint_names
    )
    path = folder / "model.onnx"
    export_onnx(deploy, path, config, do_simplify=False)
    return model, path


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return _export("ref_maskrcnn", tmp_path_factory.mktemp("parity_mask"))


def _scene(h: int, w: int, seed: int) -> np.ndarray:
    """Shapes on a textured background: something for the detector to find."""
    rng = np.random.default_rng(seed)
    image = cv2.resize(rng.integers(60, 200, (h // 12, w // 12, 3), dtype=np.uint8), (w, h))
    for _ in range(6):
        x, y = int(rng.integers(0, w - w // 4)), int(rng.integers(0, h - h // 3))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        bw, bh = int(rng.integers(w // 12, w // 4)), int(rng.integers(h // 8, h // 3))
        cv2.rectangle(image, (x, y), (x + bw, y + bh), colour, -1)
    return image


def _as_dict(d) -> dict[str, np.ndarray]:
    return {"boxes": d.boxes, "scores": d.scores, "labels": d.labels, "masks": d.masks}


@pytest.mark.parametrize(
    "scale,backend",
    [(1, "onnxruntime"), (2, "onnxruntime"), (1, "openvino")],
    ids=["source-size", "twice-the-source-size", "openvino"],
)
def test_runtime_detections_match_torchvision_eager(exported, scale, backend):
    model, path = exported
    detector = Detector.open(path, backend=backend, threads=1)
    assert detector.backend.name.startswith(backend)
    tally = ParityTally()
    for seed in range(2):
        frame = _scene(SOURCE_HW[0] * scale, SOURCE_HW[1] * scale, seed)
        (reference,) = run_eager(model, [frame], batch=1)
        reference["masks"] = reference["masks"][:, 0]
        (candidate,) = detector.detect([frame])
        tally.add(reference, _as_dict(candidate))
    summary = tally.summary()
    print(json.dumps(summary))
    assert summary["reference_detections"] > 0
    assert summary["matched_share"] >= 0.95
    assert summary["mean_mask_iou"] >= 0.98


def test_keypoint_rcnn_keypoints_match_torchvision_eager(tmp_path):
    """Downscaled frames: preprocessing differs from torchvision's by ~1e-5, and with untrained
    weights a heatmap may have near-equal peaks, so a few keypoints may move by one heatmap cell;
    the rest must agree to a small fraction of a pixel."""
    model, path = _export("ref_keypointrcnn", tmp_path)
    detector = Detector.open(path)
    frame = _scene(SOURCE_HW[0] * 2, SOURCE_HW[1] * 2, seed=7)  # downscaled by the graph's rule
    (reference,) = run_eager(model, [frame], batch=1)
    (candidate,) = detector.detect([frame])
    assert candidate.keypoints is not None and candidate.keypoints.shape[1:] == (17, 3)
    pairs = match_detections(reference["boxes"], reference["labels"], candidate.boxes, candidate.labels, 0.99)
    assert len(reference["boxes"]) > 0 and len(pairs) == len(reference["boxes"])
    errors = np.concatenate(
        [np.abs(reference["keypoints"][i, :, :2] - candidate.keypoints[j, :, :2]).max(1) for i, j, _ in pairs]
    )
    print(
        f"keypoints: {len(errors)}, within 0.05 px: {np.mean(errors <= 0.05):.3f}, max {errors.max():.3f} px"
    )
    assert np.mean(errors <= 0.05) >= 0.97
    cell = 2 * max(float((reference["boxes"][:, 2:] - reference["boxes"][:, :2]).max()) / 56, 1.0)
    assert errors.max() <= cell  # at most one heatmap cell (56 per box side), in frame pixels


def test_run_cli_on_the_exported_model_writes_masks_and_video(exported, tmp_path, capsys):
    _, path = exported
    video = tmp_path / "scene.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (SOURCE_HW[1], SOURCE_HW[0]))
    for seed in range(3):
        writer.write(_scene(*SOURCE_HW, seed))
    writer.release()
    code = run_main(["--model", str(path), "--source", str(video), "--out", str(tmp_path / "out"),
                     "--score", "0.05", "--rle", "--no-progress"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    records = [json.loads(line) for line in (tmp_path / "out" / "detections.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in records] == [0, 1, 2]
    assert any(r["detections"] for r in records)
    assert all("mask" in d for r in records for d in r["detections"])
    cap = cv2.VideoCapture(str(tmp_path / "out" / "videos" / "scene.annotated.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
