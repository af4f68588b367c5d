"""``edgercnn parity``: the report's numbers (matching, mask IoU, COCO AP) and its command line."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from edgercnn.export.parity import parity_report, run_eager
from pycocotools import mask as mask_utils

from tests.builders.torch_models import random_bgr_images, tiny_model
from tests.cli import verb

main = verb("parity")

TINY = "tiny_maskrcnn_parity_test"


def _ground_truth_from(outputs, height, width, min_score=0.3):
    """A COCO set whose objects are eager's confident detections: eager's AP is then high, and a
    candidate's AP can only equal it if it finds the same objects with the same masks."""
    images, annotations = [], []
    for image_id, out in enumerate(outputs, start=1):
        images.append({"id": image_id, "file_name": f"{image_id}.png", "height": height, "width": width})
        for box, score, label, mask in zip(
            out["boxes"], out["scores"], out["labels"], out["masks"], strict=True
        ):
            if score < min_score:
                continue
            rle = mask_utils.encode(np.asfortranarray((mask[0] > 0.5).astype(np.uint8)))
            rle["counts"] = rle["counts"].decode("ascii")
            x0, y0, x1, y1 = (float(v) for v in box)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(label),
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": float(mask_utils.area(rle)),
                    "segmentation": rle,
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i, "name": f"class_{i}"} for i in range(1, 4)]
    return {"images": images, "annotations": annotations, "categories": categories}


def test_deploy_graph_reports_full_match_mask_iou_and_equal_ap():
    model = tiny_model("maskrcnn", seed=5)
    images = random_bgr_images(3, 96, 128, seed=9)
    gt = _ground_truth_from(run_eager(model, images, batch=1), 96, 128)
    assert gt["annotations"], "the ground truth needs objects"
    report = parity_report(model, images, candidates=["deploy"], batch=3, gt=gt)
    deploy = report["candidates"]["deploy"]
    assert report["eager_ap"]["bbox"] > 0.5 and report["eager_ap"]["segm"] > 0.5
    assert deploy["matched_share"] >= 0.995 and deploy["max_score_error"] <= 1e-3
    assert deploy["mean_mask_iou"] >= 0.99
    assert all(abs(delta) <= 0.1 for delta in deploy["ap_delta_points"].values()), deploy


@pytest.fixture
def tiny_arch(register_tiny_arch):
    return register_tiny_arch(TINY, "maskrcnn")


def test_parity_command_prints_json_for_a_folder_of_images(tmp_path, tiny_arch, capsys):
    for i, image in enumerate(random_bgr_images(2, 100, 140, seed=1)):
        cv2.imwrite(str(tmp_path / f"frame_{i}.png"), image)
    argv = ["--arch", TINY, "--random-weights", "--images", str(tmp_path), "--candidates", "deploy", "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 2 and report["source_size"] == [140, 100]
    assert report["candidates"]["deploy"]["reference_detections"] > 0
    assert report["candidates"]["deploy"]["matched_share"] >= 0.995


def test_parity_command_refuses_unknown_candidates(capsys):
    assert main(["--arch", "ref_maskrcnn", "--random-weights", "--candidates", "tflite"]) == 2
    assert "unknown candidate" in capsys.readouterr().err
