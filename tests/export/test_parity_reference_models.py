"""The bundled reference models (models/*.json, trained on the synthetic set): deploy graph and
portable ONNX reproduce eager's detections and COCO AP on the first validation images."""

from __future__ import annotations

import pytest
from edgercnn.export.parity import parity_report
from edgercnn.export.refmodels import architectures
from edgercnn.export.refmodels.synthdata.dataset import build_split

from tests.paths import REPO_ROOT

IMAGES = 6


@pytest.mark.parametrize("name", ["ref_fasterrcnn", "ref_maskrcnn", "ref_keypointrcnn"])
def test_reference_model_exports_reproduce_eager_detections_and_ap(name, tmp_path):
    card_path = REPO_ROOT / "models" / f"{name}.json"
    if not card_path.exists():
        pytest.skip(f"{card_path.name} is not bundled (yet): nothing to compare")
    model = architectures.build_from_card(architectures.load_card(card_path))
    gt, images, _ = build_split(0, "val", IMAGES, 384, 288)
    report = parity_report(
        model, images, candidates=["deploy", "portable"], batch=2, gt=gt, work_dir=tmp_path
    )
    for candidate, summary in report["candidates"].items():
        where = (name, candidate, summary)
        assert summary["reference_detections"] > 0, where
        assert summary["matched_share"] >= 0.995, where
        assert summary["max_score_error"] <= 1e-3, where
        assert all(abs(delta) <= 0.1 for delta in summary["ap_delta_points"].values()), where
        if "mean_mask_iou" in summary:
            assert summary["mean_mask_iou"] >= 0.99, where
        if "keypoints_within_1px_share" in summary:
            assert summary["keypoints_within_1px_share"] >= 0.995, where
