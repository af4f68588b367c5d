"""Fast R-CNN mode (``--proposals external``): the graph fed proposals detects what torchvision's
RoI heads detect when fed the same proposals, with RoIAlign or RoIPool, in both flavours, and the
exported file runs end to end on a video with motion proposals."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from edgercnn.export.deploy import DeployOptions, DeployRCNN
from edgercnn.export.fast_rcnn import eager_with_proposals, fast_rcnn_parity, pad_proposals, with_roi_op
from edgercnn.export.refmodels import architectures
from edgercnn.export.refmodels.synthdata.dataset import build_split
from edgercnn.runtime.config import ModelConfig
from edgercnn.runtime.detector import Detector
from edgercnn.runtime.errors import UsageError

from tests.cli import verb
from tests.paths import REPO_ROOT

IMAGES = 4
RANDOM_BOXES = 24


def reference_model(name: str) -> torch.nn.Module:
    return architectures.build_from_card(architectures.load_card(REPO_ROOT / "models" / f"{name}.json"))


def proposals_from_ground_truth(gt: dict, seed: int = 0) -> list[np.ndarray]:
    """Per image: the true boxes, jittered copies and random boxes (the source size is the graph's
    valid size for the reference models, so source pixels are graph-input pixels)."""
    rng = np.random.default_rng(seed)
    proposals = []
    for info in gt["images"]:
        boxes = np.array(
            [a["bbox"] for a in gt["annotations"] if a["image_id"] == info["id"]], dtype=np.float32
        ).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        jittered = boxes + rng.normal(0.0, 4.0, boxes.shape).astype(np.float32)
        corner = rng.uniform(0, 300, (RANDOM_BOXES, 2))
        size = rng.uniform(8, 120, (RANDOM_BOXES, 2))
        random = np.concatenate([corner, corner + size], axis=1).astype(np.float32)
        proposals.append(np.concatenate([boxes, jittered, random]))
    return proposals


@pytest.fixture(scope="module")
def val_images():
    gt, images, _ = build_split(0, "val", IMAGES, 384, 288)
    return images, proposals_from_ground_truth(gt)


@pytest.mark.parametrize(
    ("name", "roi_op", "candidates"),
    [
        # Each op in each flavour once (an ONNX export is most of a case's time).
        ("ref_fasterrcnn", "align", ("deploy", "portable")),
        ("ref_fasterrcnn", "pool", ("deploy", "tensorrt")),
        ("ref_maskrcnn", "align", ("deploy", "tensorrt")),
        ("ref_maskrcnn", "pool", ("deploy", "portable")),
    ],
)
def test_fast_rcnn_mode_reproduces_eager_roi_heads_fed_the_same_proposals(
    name, roi_op, candidates, val_images, tmp_path
):
    images, proposals = val_images
    report = fast_rcnn_parity(
        reference_model(name), images, proposals, roi_op=roi_op, candidates=candidates, batch=2,
        work_dir=tmp_path,
    )  # fmt: skip
    assert sorted(report) == sorted(candidates)
    for candidate, summary in report.items():
        where = (name, roi_op, candidate, summary)
        assert summary["reference_detections"] >= IMAGES, where
        assert summary["matched_share"] >= 0.995, where
        assert summary["max_score_error"] <= 1e-3, where
        assert summary["max_box_error_px"] <= 0.05, where
        if name == "ref_maskrcnn":
            assert summary["mean_mask_iou"] >= 0.99, where


def test_roi_pool_changes_the_detections_so_its_parity_is_not_roialigns(val_images):
    images, proposals = val_images
    model = reference_model("ref_fasterrcnn")
    align = eager_with_proposals(model, images[:2], proposals[:2])
    pool = eager_with_proposals(with_roi_op(model, "pool"), images[:2], proposals[:2])
    differs = [
        a["scores"].shape != p["scores"].shape or np.abs(a["scores"] - p["scores"]).max() > 1e-2
        for a, p in zip(align, pool, strict=True)
    ]
    assert all(differs)


def test_rows_past_the_proposal_count_do_not_change_the_detections(val_images):
    images, proposals = val_images
    model = reference_model("ref_fasterrcnn")
    deploy = DeployRCNN(model, DeployOptions(288, 384, proposals="external", max_proposals=80)).eval()
    from edgercnn.export.parity import graph_inputs

    x = graph_inputs(model, images[:2])
    boxes, count = pad_proposals(proposals[:2], 80)
    garbage = boxes.copy()
    rng = np.random.default_rng(3)
    for i, n in enumerate(count):
        corner = rng.uniform(0, 250, (80 - n, 2))
        garbage[i, n:] = np.concatenate([corner, corner + 60], axis=1)
    with torch.inference_mode():
        clean = deploy(x, torch.from_numpy(boxes), torch.from_numpy(count))
        noisy = deploy(x, torch.from_numpy(garbage), torch.from_numpy(count))
        none = deploy(x, torch.from_numpy(garbage), torch.zeros_like(torch.from_numpy(count)))
    for a, b in zip(clean, noisy, strict=True):
        torch.testing.assert_close(a, b)
    assert clean[0].min() > 0 and none[0].tolist() == [0, 0]  # the count alone decides which rows count


def test_export_cli_writes_a_fast_rcnn_mode_model_that_runs_on_a_video_with_motion_proposals(tmp_path):
    out = tmp_path / "frcnn"
    card = str(REPO_ROOT / "models" / "ref_fasterrcnn.json")
    argv = ["--card", card, "--proposals", "external", "--max-proposals", "120", "--roi-op", "pool"]
    assert verb("export")([*argv, "--flavour", "portable", "--no-simplify", "--out", str(out)]) == 0
    path = out / "model.onnx"
    names = [i.name for i in onnx.load(str(path), load_external_data=False).graph.input]
    assert names == ["images", "proposals", "num_proposals"]
    config = ModelConfig.from_model_file(path)
    assert config.wants_proposals and config.max_proposals == 120 and config.roi_op == "pool"
    assert "rpn_post_nms_top_n" not in config.thresholds

    detector = Detector.open(path)
    with pytest.raises(UsageError, match="needs proposals for every image"):
        detector.detect([np.zeros((288, 384, 3), np.uint8)])
    detector.close()

    run_dir = tmp_path / "run"
    video = str(REPO_ROOT / "samples" / "synth_street.mp4")
    run_args = ["--model", str(path), "--source", video, "--out", str(run_dir), "--max-frames", "40"]
    assert verb("run")([*run_args, "--no-video", "--no-images", "--no-progress"]) == 0
    records = [json.loads(line) for f in run_dir.rglob("*.jsonl") for line in f.read_text().splitlines()]
    assert len(records) == 40
    assert sum(len(r["detections"]) for r in records) > 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--max-proposals", "0"], "max proposals must be at least 1, got 0"),
        (["--precision", "int8", "--calib", "calib_data/synth"], "calibrates on images alone"),
    ],
)
def test_export_cli_refuses_impossible_fast_rcnn_mode_options_in_one_line(extra, message, tmp_path, capsys):
    card = str(REPO_ROOT / "models" / "ref_fasterrcnn.json")
    argv = ["--card", card, "--proposals", "external", *extra, "--out", str(tmp_path)]
    assert verb("export")(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1 and message in err[0], err
