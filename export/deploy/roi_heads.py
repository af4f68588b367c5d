"""torchvision's ``RoIHeads`` inference (boxes, masks, keypoints) with static shapes.

``postprocess_detections`` becomes: class-wise decode of every padded proposal, clip, drop the
background column, mask (padding proposals, ``score > box_score_thresh``, boxes smaller than
1e-2) to ``-inf``, then one class-aware NMS op padded to ``detections_per_img``. The mask and
keypoint heads run on the padded final boxes; their padding rows are computed and ignored.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from edgercnn.export import ops
from edgercnn.export.deploy.boxes import (
    KEEP_ALL_FINITE,
    clip_to_size,
    gather_rows,
    large_enough,
    mask_scores,
    row_is_valid,
)
from edgercnn.export.deploy.errors import UnsupportedModelError
from edgercnn.export.deploy.geometry import InputGeometry
from edgercnn.export.deploy.keypoints import heatmaps_to_keypoints_static
from edgercnn.export.deploy.mask_predictor import ShuffledMaskPredictor, is_standard_predictor
from edgercnn.runtime.contract import ROI_OP_MODES, RoIOp
from torch import nn
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.poolers import _setup_scales

# torchvision's remove_small_boxes bound in postprocess_detections.
MIN_DETECTION_SIDE = 1e-2


class StaticRoIPool(nn.Module):
    """A ``MultiScaleRoIAlign`` as one fused op on ``[N, R, 4]`` boxes, scales fixed for the input size.

    ``roi_op="pool"`` keeps the pooler's levels, scales and output size but max-pools each bin
    (``torchvision.ops.roi_pool``, Fast R-CNN's RoI Pooling) instead of sampling it bilinearly.
    """

    def __init__(
        self,
        pooler: nn.Module,
        feature_names: list[str],
        feature_shapes: list[torch.Size],
        geometry: InputGeometry,
        roi_op: str = RoIOp.ALIGN.value,
    ) -> None:
        super().__init__()
        if roi_op not in ROI_OP_MODES:
            raise UnsupportedModelError(f"RoI op must be one of {', '.join(ROI_OP_MODES)}, got {roi_op!r}")
        self.mode = ROI_OP_MODES[roi_op]
        if not isinstance(pooler, MultiScaleRoIAlign):
            raise UnsupportedModelError(
                f"RoI pooler {type(pooler).__name__} is not torchvision's MultiScaleRoIAlign; "
                "the deploy graph only re-expresses MultiScaleRoIAlign"
            )
        # torchvision filters the feature dict in its own order, keeping the pooler's names.
        self.indices = [i for i, name in enumerate(feature_names) if name in pooler.featmap_names]
        shapes = [feature_shapes[i] for i in self.indices]
        dummies = [torch.zeros(tuple(s)) for s in shapes]
        scales, _ = _setup_scales(
            dummies,
            [(geometry.valid_height, geometry.valid_width)],
            pooler.canonical_scale,
            pooler.canonical_level,
        )
        self.scales = [float(s) for s in scales]
        self.output_size = (int(pooler.output_size[0]), int(pooler.output_size[1]))
        self.sampling_ratio = int(pooler.sampling_ratio)
        self.canonical_scale = int(pooler.canonical_scale)
        self.canonical_level = int(pooler.canonical_level)

    def forward(self, features: list[torch.Tensor], boxes: torch.Tensor) -> torch.Tensor:
        """``[N, R, 4]`` -> ``[N * R, C, oh, ow]`` (the layout the heads take)."""
        pooled = ops.multi_level_roi_align(
            boxes,
            [features[i] for i in self.indices],
            self.output_size,
            self.scales,
            self.sampling_ratio,
            aligned=False,
            mode=self.mode,
            canonical_scale=self.canonical_scale,
            canonical_level=self.canonical_level,
        )
        return pooled.flatten(0, 1)


class StaticBoxHead(nn.Module):
    """Detections padded to ``detections_per_img``: boxes, scores, labels and their count."""

    def __init__(self, heads: RoIHeads, pool: StaticRoIPool, geometry: InputGeometry, num_proposals: int):
        super().__init__()
        self.pool = pool
        self.box_head = heads.box_head
        self.box_predictor = heads.box_predictor
        self.box_coder = heads.box_coder
        self.score_thresh = float(heads.score_thresh)
        self.nms_thresh = float(heads.nms_thresh)
        self.detections_per_img = int(heads.detections_per_img)
        self.num_proposals = num_proposals
        upper = [geometry.valid_width, geometry.valid_height] * 2
        self.register_buffer("clip_upper", torch.tensor(upper, dtype=torch.float32), persistent=False)

    def forward(
        self, features: list[torch.Tensor], proposals: torch.Tensor, proposal_count: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, rows = proposals.shape[0], self.num_proposals
        pooled = self.pool(features, proposals)
        class_logits, box_regression = self.box_predictor(self.box_head(pooled))
        num_classes = class_logits.shape[-1]
        decoded = self.box_coder.decode_single(box_regression, proposals.reshape(-1, 4))
        boxes = clip_to_size(decoded.reshape(batch, rows, num_classes, 4), self.clip_upper)
        scores = F.softmax(class_logits, -1).reshape(batch, rows, num_classes)
        # Every (proposal, foreground class) pair is a candidate, in torchvision's order.
        boxes = boxes[:, :, 1:, :].reshape(batch, -1, 4)
        scores = scores[:, :, 1:].reshape(batch, -1)
        labels = torch.arange(1, num_classes, dtype=torch.int64, device=boxes.device).repeat(rows)
        valid = row_is_valid(proposal_count, rows).unsqueeze(-1).expand(batch, rows, num_classes - 1)
        keep = (
            valid.reshape(batch, -1) & (scores > self.score_thresh) & large_enough(boxes, MIN_DETECTION_SIDE)
        )
        scores = mask_scores(scores, keep)
        labels = labels.unsqueeze(0).expand(batch, -1)
        kept, count = ops.batched_nms(
            boxes, scores, labels, self.nms_thresh, KEEP_ALL_FINITE, self.detections_per_img, -1
        )
        is_detection = row_is_valid(count, self.detections_per_img)
        det_boxes = torch.where(is_detection.unsqueeze(-1), gather_rows(boxes, kept), 0.0)
        det_scores = torch.where(is_detection, gather_rows(scores, kept), 0.0)
        det_labels = torch.where(is_detection, gather_rows(labels, kept), 0)
        return count, det_boxes, det_scores, det_labels


class StaticMaskHead(nn.Module):
    """``[N, K, M, M]`` mask probabilities of each detection's label (``maskrcnn_inference``)."""

    def __init__(self, heads: RoIHeads, pool: StaticRoIPool) -> None:
        super().__init__()
        self.pool = pool
        self.mask_head = heads.mask_head
        self.mask_predictor = heads.mask_predictor
        # torchvision's predictor runs at 14x14 and only the label's map is upsampled (mask_predictor.py)
        standard = is_standard_predictor(heads.mask_predictor)
        self.shuffled = ShuffledMaskPredictor(heads.mask_predictor) if standard else None

    def forward(
        self, features: list[torch.Tensor], boxes: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        batch, rows = boxes.shape[:2]
        x = self.mask_head(self.pool(features, boxes))
        if self.shuffled is not None:
            chosen = self.shuffled(x, labels)
            return torch.sigmoid(chosen).reshape(batch, rows, *chosen.shape[-2:])
        logits = self.mask_predictor(x)
        size = logits.shape[-2:]
        index = labels.reshape(-1, 1, 1, 1).expand(-1, 1, size[0], size[1])
        # Selecting before the sigmoid gives the same numbers with one channel of work.
        chosen = torch.gather(logits, 1, index)
        return torch.sigmoid(chosen).reshape(batch, rows, size[0], size[1])


class StaticKeypointHead(nn.Module):
    """Each detection's keypoint heatmap logits ``[N, K, P, S, S]`` (decoded on the host, for the
    detections kept, by ``runtime/keypoints.py``), or with ``decode_in_graph`` its keypoints
    ``[N, K, P, 3]`` ``(x, y, score)`` (``keypointrcnn_inference`` for every padded row)."""

    def __init__(
        self,
        heads: RoIHeads,
        pool: StaticRoIPool,
        geometry: InputGeometry,
        candidates: int,
        radius: float | None,
        decode_in_graph: bool = False,
    ) -> None:
        super().__init__()
        self.pool = pool
        self.keypoint_head = heads.keypoint_head
        self.keypoint_predictor = heads.keypoint_predictor
        self.max_height = geometry.valid_height
        self.max_width = geometry.valid_width
        self.candidates = candidates
        self.radius = radius
        self.decode_in_graph = decode_in_graph

    def forward(self, features: list[torch.Tensor], boxes: torch.Tensor) -> torch.Tensor:
        batch, rows = boxes.shape[:2]
        heatmaps = self.keypoint_predictor(self.keypoint_head(self.pool(features, boxes)))
        if not self.decode_in_graph:
            return heatmaps.reshape(batch, rows, *heatmaps.shape[1:])
        keypoints = heatmaps_to_keypoints_static(
            heatmaps, boxes.reshape(-1, 4), self.max_height, self.max_width, self.candidates, self.radius
        )
        return keypoints.reshape(batch, rows, keypoints.shape[-2], 3)
