"""Seeded random-weight torchvision R-CNNs at their default sizes: deploy graph and portable ONNX
against eager (marked slow: ResNet-50 at 800x1066 takes minutes on a small CPU).

Random ResNet-50 heads give every class about 1/91 of the softmax, below the 0.05 score
threshold, so the classifier weights are scaled up (``sharpen``) to make real detections exist.
Keypoint positions from random heatmaps (noise with many equal peaks) are not a meaningful check
of the windowed keypoint search; those are checked on peaked heatmaps and on the trained reference
model, so here keypoint R-CNN is judged on its boxes and scores.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from export import architectures
from export.parity import parity_report

pytestmark = pytest.mark.slow

ARCHS = [
    "fasterrcnn_resnet50_fpn",
    "fasterrcnn_resnet50_fpn_v2",
    "fasterrcnn_mobilenet_v3_large_fpn",
    "fasterrcnn_mobilenet_v3_large_320_fpn",
    "maskrcnn_resnet50_fpn",
    "maskrcnn_resnet50_fpn_v2",
    "keypointrcnn_resnet50_fpn",
]


def sharpen(model: torch.nn.Module, images: list[np.ndarray], logit_std: float = 2.5) -> torch.nn.Module:
    """Scale the random classifier so its logits spread with ``logit_std``: scores then range
    from below 0.05 to near 1 like a trained model's, without saturating at 1.0 (ties everywhere
    would make the kept set depend on sort order, in eager as much as in the graph)."""
    captured: list[torch.Tensor] = []
    predictor = model.roi_heads.box_predictor
    handle = predictor.register_forward_hook(lambda _m, _i, out: captured.append(out[0]))
    with torch.inference_mode():
        model([torch.from_numpy(images[0][:, :, ::-1].copy()).permute(2, 0, 1).float() / 255.0])
    handle.remove()
    with torch.no_grad():
        predictor.cls_score.weight.mul_(logit_std / float(captured[0].std()))
    return model


def camera_frames(count: int, height: int = 480, width: int = 640, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(count):
        coarse = rng.uniform(0, 255, size=(height // 20, width // 20, 3)).astype(np.float32)
        frames.append(np.kron(coarse, np.ones((20, 20, 1), dtype=np.float32)).astype(np.uint8))
    return frames


@pytest.mark.parametrize("arch", ARCHS)
def test_random_weight_torchvision_model_matches_eager(arch, tmp_path):
    torch.manual_seed(0)
    frames = camera_frames(1)
    model = sharpen(architectures.build_model(arch).eval(), frames)
    report = parity_report(model, frames, candidates=["deploy", "portable"], work_dir=tmp_path)
    print(json.dumps({arch: report}, indent=1))
    for name, summary in report["candidates"].items():
        assert summary["reference_detections"] > 0, (arch, name)
        assert summary["matched_share"] >= 0.995, (arch, name, summary)
        assert summary["max_score_error"] <= 1e-3, (arch, name, summary)
        if "mean_mask_iou" in summary:
            assert summary["mean_mask_iou"] >= 0.99, (arch, name, summary)
