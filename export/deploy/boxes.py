"""Box arithmetic of torchvision's R-CNN postprocessing, on padded ``[N, B, 4]`` tensors.

Filters never remove rows: a rejected candidate's score becomes ``-inf`` so the NMS op skips it
while every shape stays fixed.
"""

from __future__ import annotations

import torch

# Lowest finite float32: the NMS op keeps ``score > threshold``, so every finite score takes part
# and only the ``-inf`` rows the graph masked stay out.
KEEP_ALL_FINITE = float(torch.finfo(torch.float32).min)


def clip_to_size(boxes: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """``clip_boxes_to_image``: clamp x to ``[0, width]`` and y to ``[0, height]``.

    ``upper`` is the constant ``[width, height, width, height]``; clamping is exact, so the
    values equal torchvision's whatever the op layout.
    """
    return torch.minimum(boxes.clamp(min=0.0), upper)


def large_enough(boxes: torch.Tensor, min_size: float) -> torch.Tensor:
    """``remove_small_boxes`` as a mask: both sides ``>= min_size``."""
    widths = boxes[..., 2] - boxes[..., 0]
    heights = boxes[..., 3] - boxes[..., 1]
    return (widths >= min_size) & (heights >= min_size)


def mask_scores(scores: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Scores where ``keep`` holds, ``-inf`` elsewhere."""
    return torch.where(keep, scores, float("-inf"))


def gather_rows(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``values[n, index[n, k]]`` for ``values [N, B, ...]`` and ``index [N, K]`` (padding -1 -> row 0)."""
    safe = index.clamp(min=0)
    if values.dim() == 2:
        return torch.gather(values, 1, safe)
    trailing = values.shape[2:]
    expanded = safe.reshape(*safe.shape, *([1] * len(trailing))).expand(*safe.shape, *trailing)
    return torch.gather(values, 1, expanded)


def row_is_valid(count: torch.Tensor, size: int) -> torch.Tensor:
    """``[N, size]`` mask of the rows below each image's ``count``."""
    positions = torch.arange(size, dtype=count.dtype, device=count.device)
    return positions.unsqueeze(0) < count.unsqueeze(1)
