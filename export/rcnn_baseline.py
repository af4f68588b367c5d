"""R-CNN (Girshick et al. 2014) as a baseline: selective search regions, each warped and classified.

Every region is warped on its own to a fixed ``warp_size`` square (bilinear, ``roi_align`` over
the normalized image: the paper's warp without its 16 px context) and run through the CNN alone,
so nothing is shared between regions: that per-region CNN is what Fast R-CNN removed. The CNN is
a trained R-CNN's own backbone and box head applied to the warped crop as if it were an image
whose one RoI is the whole crop; its class scores and box regression give each region's
detections, mapped back to the image, then torchvision's postprocessing (score threshold,
class-wise NMS, top ``detections_per_img``). No separate SVMs: the box head's softmax classifies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torchvision
from edgercnn.export.eager import Outputs, bgr_to_tensor, reset_pooler_scales
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN

# Side of the warped square; the reference models see objects of ~30-150 px at their input size.
DEFAULT_WARP_SIZE = 112
# Regions per CNN batch: bounds memory, not the result.
DEFAULT_CHUNK = 64
MIN_BOX_SIDE = 1e-2  # torchvision's remove_small_boxes bound in postprocess_detections


@dataclass(frozen=True)
class RCNNOptions:
    warp_size: int = DEFAULT_WARP_SIZE
    chunk: int = DEFAULT_CHUNK


class RCNNBaseline:
    """Per-region classification with a torchvision R-CNN's backbone and box head."""

    def __init__(self, model: GeneralizedRCNN, options: RCNNOptions | None = None) -> None:
        self.model = model.eval()
        self.options = options or RCNNOptions()
        transform = model.transform
        self.mean = torch.tensor(transform.image_mean).view(3, 1, 1)
        self.std = torch.tensor(transform.image_std).view(3, 1, 1)
        heads = model.roi_heads
        self.score_thresh = float(heads.score_thresh)
        self.nms_thresh = float(heads.nms_thresh)
        self.detections_per_img = int(heads.detections_per_img)

    def warp(self, image_bgr: np.ndarray, regions: np.ndarray) -> torch.Tensor:
        """``[R, 3, S, S]`` normalized crops, each region stretched to the square (R-CNN's warp)."""
        normalized = (bgr_to_tensor(image_bgr) - self.mean) / self.std
        side = self.options.warp_size
        boxes = torch.as_tensor(np.asarray(regions, dtype=np.float32).reshape(-1, 4))
        return torchvision.ops.roi_align(normalized[None], [boxes], (side, side), 1.0, 2, aligned=True)

    @torch.inference_mode()
    def classify(self, image_bgr: np.ndarray, regions: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Per region and class: refined boxes ``[R, C, 4]`` in image pixels and scores ``[R, C]``."""
        heads, side = self.model.roi_heads, self.options.warp_size
        regions_t = torch.as_tensor(np.asarray(regions, dtype=np.float32).reshape(-1, 4))
        crops = self.warp(image_bgr, regions_t.numpy())
        whole = torch.tensor([[0.0, 0.0, float(side), float(side)]])
        boxes_out, scores_out = [], []
        reset_pooler_scales(self.model)  # the pooler caches its scales for the image size it saw
        try:
            for start in range(0, len(crops), self.options.chunk):
                batch = crops[start : start + self.options.chunk]
                features = self.model.backbone(batch)
                count = len(batch)
                pooled = heads.box_roi_pool(features, [whole] * count, [(side, side)] * count)
                logits, deltas = heads.box_predictor(heads.box_head(pooled))
                in_crop = heads.box_coder.decode(deltas, [whole] * count).reshape(count, -1, 4)
                region = regions_t[start : start + count]
                scale = ((region[:, 2:] - region[:, :2]) / side).repeat(1, 2)  # sx, sy, sx, sy
                boxes_out.append(region[:, None, :2].repeat(1, 1, 2) + in_crop * scale[:, None, :])
                scores_out.append(torch.softmax(logits, -1))
        finally:
            reset_pooler_scales(self.model)
        if not boxes_out:
            classes = int(heads.box_predictor.cls_score.out_features)
            return torch.zeros((0, classes, 4)), torch.zeros((0, classes))
        return torch.cat(boxes_out), torch.cat(scores_out)

    def detect(self, image_bgr: np.ndarray, regions: np.ndarray) -> dict[str, np.ndarray]:
        """Detections (boxes, scores, labels) of one image from its regions, torchvision's postprocess."""
        boxes, scores = self.classify(image_bgr, regions)
        height, width = image_bgr.shape[:2]
        boxes = torchvision.ops.clip_boxes_to_image(boxes, (height, width))
        classes = scores.shape[1]
        labels = torch.arange(classes).view(1, -1).expand_as(scores)
        boxes, scores, labels = (
            boxes[:, 1:].reshape(-1, 4),
            scores[:, 1:].reshape(-1),
            labels[:, 1:].reshape(-1),
        )
        keep = torch.where(scores > self.score_thresh)[0]
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        keep = torchvision.ops.remove_small_boxes(boxes, MIN_BOX_SIDE)
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        keep = torchvision.ops.batched_nms(boxes, scores, labels, self.nms_thresh)[: self.detections_per_img]
        return {"boxes": boxes[keep].numpy(), "scores": scores[keep].numpy(), "labels": labels[keep].numpy()}

    def run(self, images: Sequence[np.ndarray], regions: Sequence[np.ndarray]) -> Outputs:
        """``detect`` over images, one region set each (e.g. ``runtime.selective_search``)."""
        return [self.detect(image, r) for image, r in zip(images, regions, strict=True)]
