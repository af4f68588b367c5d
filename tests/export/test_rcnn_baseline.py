"""The R-CNN baseline: selective search finds the synthetic objects, and classifying each warped
region with the reference model's backbone + box head detects them (AP recorded, well above 0)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from edgercnn.export.coco_eval import coco_aps
from edgercnn.export.eager import eager_detections
from edgercnn.export.rcnn_baseline import RCNNBaseline, RCNNOptions
from edgercnn.export.refmodels import architectures
from edgercnn.export.refmodels.synthdata.dataset import build_split
from edgercnn.runtime.errors import UsageError
from edgercnn.runtime.matching import box_iou
from edgercnn.runtime.selective_search import selective_search

from tests.paths import REPO_ROOT

IMAGES = 2
REGIONS = 300


@pytest.fixture(scope="module")
def val_regions():
    gt, images, _ = build_split(0, "val", IMAGES, 384, 288)
    return gt, images, [selective_search(image, max_proposals=REGIONS) for image in images]


def true_boxes(gt: dict, image_id: int) -> np.ndarray:
    boxes = np.array([a["bbox"] for a in gt["annotations"] if a["image_id"] == image_id], np.float32)
    boxes[:, 2:] += boxes[:, :2]
    return boxes


def test_selective_search_regions_cover_most_synthetic_objects(val_regions):
    gt, images, regions = val_regions
    found = total = 0
    for info, image, boxes in zip(gt["images"], images, regions, strict=True):
        assert boxes.shape[1:] == (4,) and 0 < len(boxes) <= REGIONS
        assert (boxes[:, 2] <= image.shape[1] + 1e-3).all() and (boxes[:, 3] <= image.shape[0] + 1e-3).all()
        best = box_iou(true_boxes(gt, info["id"]), boxes).max(axis=1)
        found, total = found + int((best >= 0.5).sum()), total + len(best)
    assert found / total >= 0.7, (found, total)


def test_rcnn_baseline_detects_the_synthetic_objects_with_a_recorded_ap(val_regions, record_property):
    gt, images, regions = val_regions
    model = architectures.build_from_card(
        architectures.load_card(REPO_ROOT / "models" / "ref_fasterrcnn.json")
    )
    outputs = RCNNBaseline(model, RCNNOptions()).run(images, regions)
    for out in outputs:
        assert 0 < len(out["scores"]) <= model.roi_heads.detections_per_img
        assert set(np.unique(out["labels"])) <= {1, 2, 3}
        assert (np.diff(out["scores"]) <= 0).all()  # NMS output, best first
    detections = [eager_detections(o, im.shape[:2]) for o, im in zip(outputs, images, strict=True)]
    ap = coco_aps("fasterrcnn", gt, detections)["bbox"]["AP"]
    record_property("rcnn_box_ap", ap)
    assert ap >= 0.1, ap


def test_rcnn_warp_stretches_each_region_to_the_square(val_regions):
    _, images, _ = val_regions
    model = architectures.build_from_card(
        architectures.load_card(REPO_ROOT / "models" / "ref_fasterrcnn.json")
    )
    baseline = RCNNBaseline(model, RCNNOptions(warp_size=32))
    crops = baseline.warp(images[0], np.array([[0, 0, 384, 288], [10, 20, 74, 52]], np.float32))
    assert tuple(crops.shape) == (2, 3, 32, 32)
    # the whole image warped is the image resized (normalization aside): same mean colour
    expected = (
        cv2.resize(images[0], (32, 32), interpolation=cv2.INTER_AREA)[:, :, ::-1].astype(np.float32) / 255
    )
    restored = (crops[0] * baseline.std + baseline.mean).permute(1, 2, 0).numpy()
    np.testing.assert_allclose(restored.mean(axis=(0, 1)), expected.mean(axis=(0, 1)), atol=0.02)


def test_selective_search_without_opencv_contrib_says_which_extra_to_install(monkeypatch):
    monkeypatch.delattr(cv2, "ximgproc", raising=False)
    with pytest.raises(UsageError, match=r"pip install 'edgercnn\[rcnn\]'"):
        selective_search(np.zeros((64, 64, 3), np.uint8))
