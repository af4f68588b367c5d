"""Tiny torchvision R-CNNs for the export tests: seconds to trace, detections even with random weights.

A three-level conv backbone with torchvision's FPN (plus its max-pooled extra level), small heads
and a small ``min_size``/``max_size`` so graphs of ~100 px trace fast. Random weights give a
softmax near ``1/num_classes`` for every class, above the 0.05 score threshold, so detections
exist; seeded construction makes every run identical.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN, KeypointRCNN, MaskRCNN
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.keypoint_rcnn import KeypointRCNNHeads, KeypointRCNNPredictor
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.rpn import AnchorGenerator, RPNHead
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

KINDS = ("fasterrcnn", "maskrcnn", "keypointrcnn")
FPN_CHANNELS = 8
NUM_CLASSES = 4
NUM_KEYPOINTS = 5


def _body() -> nn.Sequential:
    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.ReLU())

    return nn.Sequential(
        OrderedDict(stem=block(3, 8), layer1=block(8, 8), layer2=block(8, 12), layer3=block(12, 16))
    )


def tiny_model(kind: str, seed: int = 0, num_classes: int = NUM_CLASSES, **overrides: Any) -> nn.Module:
    """A seeded random-weight ``kind`` model (FPN strides 4, 8, 16 and a pooled 32)."""
    torch.manual_seed(seed)
    backbone = BackboneWithFPN(
        _body(),
        return_layers={"layer1": "0", "layer2": "1", "layer3": "2"},
        in_channels_list=[8, 12, 16],
        out_channels=FPN_CHANNELS,
        extra_blocks=LastLevelMaxPool(),
    )
    anchors = AnchorGenerator(((16,), (32,), (64,), (128,)), ((0.5, 1.0, 2.0),) * 4)
    kwargs: dict[str, Any] = {
        "min_size": 96,
        "max_size": 128,
        "rpn_anchor_generator": anchors,
        "rpn_head": RPNHead(FPN_CHANNELS, 3),
        "rpn_pre_nms_top_n_test": 200,
        "rpn_post_nms_top_n_test": 100,
        "box_roi_pool": MultiScaleRoIAlign(["0", "1", "2"], output_size=7, sampling_ratio=2),
        "box_head": TwoMLPHead(FPN_CHANNELS * 49, 32),
        "box_predictor": FastRCNNPredictor(32, num_classes),
        "box_detections_per_img": 20,
    }
    kwargs.update(overrides)
    pool14 = MultiScaleRoIAlign(["0", "1", "2"], output_size=14, sampling_ratio=2)
    if kind == "fasterrcnn":
        model = FasterRCNN(backbone, num_classes=None, **kwargs)
    elif kind == "maskrcnn":
        model = MaskRCNN(
            backbone,
            num_classes=None,
            mask_roi_pool=pool14,
            mask_head=MaskRCNNHeads(FPN_CHANNELS, [8, 8], 1),
            mask_predictor=MaskRCNNPredictor(8, 8, num_classes),
            **kwargs,
        )
    elif kind == "keypointrcnn":
        model = KeypointRCNN(
            backbone,
            num_classes=None,
            keypoint_roi_pool=pool14,
            keypoint_head=KeypointRCNNHeads(FPN_CHANNELS, [8, 8]),
            keypoint_predictor=KeypointRCNNPredictor(8, NUM_KEYPOINTS),
            **kwargs,
        )
    else:
        raise ValueError(kind)
    _sharpen_heads(model)
    return model.eval()


def _sharpen_heads(model: nn.Module) -> None:
    """Larger random head weights, so scores and heatmaps spread out like a trained model's
    instead of all sitting at 1/num_classes (which would make every comparison a tie)."""
    with torch.no_grad():
        predictor = model.roi_heads.box_predictor
        predictor.cls_score.weight.normal_(0.0, 0.5)
        predictor.bbox_pred.weight.normal_(0.0, 0.05)
        mask_predictor = getattr(model.roi_heads, "mask_predictor", None)
        if mask_predictor is not None:  # masks that are neither empty nor full
            mask_predictor.mask_fcn_logits.weight.normal_(0.0, 0.5)
            mask_predictor.mask_fcn_logits.bias.fill_(0.2)


def random_images(count: int, height: int, width: int, seed: int = 0) -> list[torch.Tensor]:
    """Smooth random RGB images in [0, 1] (blocks of colour, not white noise)."""
    generator = torch.Generator().manual_seed(seed)
    images = []
    for _ in range(count):
        coarse = torch.rand((1, 3, max(2, height // 12), max(2, width // 12)), generator=generator)
        images.append(torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear")[0])
    return images


def random_bgr_images(count: int, height: int, width: int, seed: int = 0) -> list:
    """The same images as OpenCV would hand them over: BGR uint8 HxWx3."""
    return [
        (img.permute(1, 2, 0).numpy()[:, :, ::-1] * 255).round().astype("uint8").copy()
        for img in random_images(count, height, width, seed)
    ]
