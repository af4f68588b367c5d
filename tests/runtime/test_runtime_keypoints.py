"""Keypoint heatmaps decoded on the host equal torchvision's ``heatmaps_to_keypoints``, for kept rows only."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from edgercnn.runtime import postprocess as postprocess_module
from edgercnn.runtime.config import ModelConfig
from edgercnn.runtime.detector import Detector
from edgercnn.runtime.keypoints import decode_heatmaps
from edgercnn.runtime.preprocess import compute_transform
from torchvision.models.detection.roi_heads import heatmaps_to_keypoints

from tests.builders.fixed_onnx import make_tiny_onnx, tiny_config, tiny_outputs


def _boxes(rng: np.random.Generator, count: int, limit: float) -> np.ndarray:
    x1 = rng.uniform(0, limit * 0.7, count)
    y1 = rng.uniform(0, limit * 0.7, count)
    size = rng.choice([0.3, 0.9, 3.5, 17.2, 55.0, 56.0, 131.7, 400.4], size=(count, 2))
    return np.stack([x1, y1, x1 + size[:, 0], y1 + size[:, 1]], 1).astype(np.float32)


@pytest.mark.parametrize("peaked", [False, True], ids=["noise", "peaked"])
def test_host_decode_equals_torchvision_heatmaps_to_keypoints(peaked):
    rng = np.random.default_rng(3)
    maps = rng.normal(0, 1, (24, 17, 56, 56)).astype(np.float32)
    if peaked:  # a trained head's heatmaps: one clear peak each
        yy, xx = np.mgrid[0:56, 0:56]
        cy, cx = rng.uniform(0, 55, (2, 24, 17, 1, 1))
        maps = maps * 0.1 + 8 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 6.0).astype(np.float32)
    boxes = _boxes(rng, 24, 600.0)
    ref_xy, ref_scores = heatmaps_to_keypoints(torch.from_numpy(maps), torch.from_numpy(boxes))
    got = decode_heatmaps(maps, boxes)
    assert got.shape == (24, 17, 3)
    np.testing.assert_allclose(got[..., :2], ref_xy[..., :2].numpy(), atol=1e-3)
    np.testing.assert_allclose(got[..., 2], ref_scores.numpy(), atol=1e-3)


def test_no_detections_decode_to_an_empty_array():
    assert decode_heatmaps(np.zeros((0, 17, 56, 56), np.float32), np.zeros((0, 4), np.float32)).shape == (
        0,
        17,
        3,
    )


def test_postprocess_decodes_only_the_detections_that_are_kept(monkeypatch):
    raw = tiny_config("keypointrcnn", detections=6)
    config = ModelConfig.from_dict(raw)
    outputs = tiny_outputs(raw, 4)
    outputs["keypoint_heatmaps"][0, 4:] = np.nan  # padding rows: never read
    seen: list[int] = []
    original = postprocess_module.decode_heatmaps

    def counting(heatmaps, boxes):
        seen.append(len(heatmaps))
        return original(heatmaps, boxes)

    monkeypatch.setattr(postprocess_module, "decode_heatmaps", counting)
    threshold = float(np.sort(outputs["scores"][0, :4])[1])  # keeps 3 of the 4 real rows
    (dets,) = postprocess_module.postprocess(
        outputs, [compute_transform(96, 128, config)], config, score_threshold=threshold
    )
    assert seen == [3] and dets.keypoints.shape == (3, 17, 3)
    assert np.isfinite(dets.keypoints).all()


def test_format_1_files_with_graph_decoded_keypoints_still_run(tmp_path):
    raw = tiny_config("keypointrcnn", keypoint_output="keypoints")
    assert raw["format_version"] == 1
    outputs = tiny_outputs(raw, 2)
    path = make_tiny_onnx(tmp_path / "v1.onnx", raw, outputs)
    detector = Detector.open(path, backend="onnxruntime")
    (dets,) = detector.detect([np.zeros((96, 128, 3), np.uint8)])
    assert detector.config.has_keypoints and dets.keypoints.shape == (2, 17, 3)
    np.testing.assert_allclose(dets.keypoints, outputs["keypoints"][0, :2], atol=1e-4)
