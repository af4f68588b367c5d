"""torchvision's ``RegionProposalNetwork`` inference with static shapes.

Same steps as ``RegionProposalNetwork.forward`` / ``filter_proposals``: per-level top-k on the
objectness logits, decode, clip to the valid (resized) image, drop small boxes and low scores,
NMS per level, keep ``post_nms_top_n``. The differences are only in form: anchors are constants
for the graph's input size, top-k happens before decoding (decoding is per box, so selecting first
gives the same numbers with less work), and filters mask scores instead of removing rows, with
the proposals padded to ``post_nms_top_n`` plus a count.
"""

from __future__ import annotations

import torch
from edgercnn.export import ops
from edgercnn.export.deploy.boxes import KEEP_ALL_FINITE, clip_to_size, gather_rows, large_enough, mask_scores
from edgercnn.export.deploy.geometry import InputGeometry
from torch import nn
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.rpn import RegionProposalNetwork


class StaticRPN(nn.Module):
    """Proposals ``[N, post_nms_top_n, 4]`` and their count ``[N]`` from FPN features."""

    def __init__(
        self, rpn: RegionProposalNetwork, geometry: InputGeometry, feature_shapes: list[torch.Size]
    ) -> None:
        super().__init__()
        self.head = rpn.head
        self.box_coder = rpn.box_coder
        self.pre_nms_top_n = int(rpn._pre_nms_top_n["testing"])
        self.post_nms_top_n = int(rpn._post_nms_top_n["testing"])
        self.nms_thresh = float(rpn.nms_thresh)
        self.score_thresh = float(rpn.score_thresh)
        self.min_size = float(rpn.min_size)

        anchors = _anchors_for(rpn, geometry, feature_shapes)
        self.anchors_per_level = [int(a.shape[0]) for a in anchors]
        self.top_n_per_level = [min(self.pre_nms_top_n, n) for n in self.anchors_per_level]
        for level, level_anchors in enumerate(anchors):
            self.register_buffer(f"anchors_{level}", level_anchors, persistent=False)
        levels = torch.cat(
            [torch.full((k,), level, dtype=torch.int64) for level, k in enumerate(self.top_n_per_level)]
        )
        self.register_buffer("levels", levels, persistent=False)
        upper = [geometry.valid_width, geometry.valid_height] * 2
        self.register_buffer("clip_upper", torch.tensor(upper, dtype=torch.float32), persistent=False)

    def forward(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        logits, deltas = self.head(features)
        batch = features[0].shape[0]
        boxes_per_level: list[torch.Tensor] = []
        scores_per_level: list[torch.Tensor] = []
        for level, (level_logits, level_deltas) in enumerate(zip(logits, deltas, strict=True)):
            # [N, A, H, W] -> [N, H*W*A] in torchvision's permute_and_flatten order.
            flat_logits = level_logits.permute(0, 2, 3, 1).reshape(batch, -1)
            height, width = level_deltas.shape[-2:]
            flat_deltas = (
                level_deltas.reshape(batch, -1, 4, height, width).permute(0, 3, 4, 1, 2).reshape(batch, -1, 4)
            )
            top_logits, top_index = flat_logits.topk(self.top_n_per_level[level], dim=1)
            top_deltas = gather_rows(flat_deltas, top_index)
            top_anchors = getattr(self, f"anchors_{level}")[top_index]
            decoded = self.box_coder.decode_single(top_deltas.reshape(-1, 4), top_anchors.reshape(-1, 4))
            boxes_per_level.append(decoded.reshape(batch, -1, 4))
            scores_per_level.append(top_logits)
        boxes = clip_to_size(torch.cat(boxes_per_level, dim=1), self.clip_upper)
        scores = torch.sigmoid(torch.cat(scores_per_level, dim=1))
        # torchvision keeps scores >= score_thresh ("for backwards compatibility").
        keep = large_enough(boxes, self.min_size) & (scores >= self.score_thresh)
        scores = mask_scores(scores, keep)
        levels = self.levels.unsqueeze(0).expand(batch, -1)
        kept, count = ops.batched_nms(
            boxes, scores, levels, self.nms_thresh, KEEP_ALL_FINITE, self.post_nms_top_n, -1
        )
        return gather_rows(boxes, kept), count


def _anchors_for(
    rpn: RegionProposalNetwork, geometry: InputGeometry, feature_shapes: list[torch.Size]
) -> list[torch.Tensor]:
    """The anchor generator's own output for this input size, split per level."""
    dummy_images = torch.zeros((1, 3, geometry.height, geometry.width))
    dummy_features = [torch.zeros(tuple(shape[:1]) + tuple(shape[1:])) for shape in feature_shapes]
    image_list = ImageList(dummy_images, [(geometry.valid_height, geometry.valid_width)])
    with torch.no_grad():
        all_anchors = rpn.anchor_generator(image_list, dummy_features)[0]
    per_level = [
        len(cells) * int(shape[-2]) * int(shape[-1])
        for cells, shape in zip(rpn.anchor_generator.cell_anchors, feature_shapes, strict=True)
    ]
    return [a.clone() for a in all_anchors.split(per_level)]
