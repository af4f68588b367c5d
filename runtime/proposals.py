"""Proposals for a Fast R-CNN mode graph: per-image boxes in source pixels -> the graph's inputs.

A Fast R-CNN mode model (``config.wants_proposals``, docs/model-format.md) takes ``proposals
[N, P, 4]`` in *graph-input* pixels (the resized image the graph sees, the frame its output boxes
are in) and ``num_proposals [N]``. Callers give boxes in the pixels of the image they pass; this
module clips them to the image, drops empty ones, maps them with the image's resize (the inverse
of ``postprocess.scale_boxes``), truncates to P (sources list their boxes best first) and pads.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .config import ModelConfig
from .contract import PROPOSAL_COUNT_NAME, PROPOSALS_NAME
from .errors import UsageError
from .preprocess import ImageTransform

# A proposal narrower or shorter than this (source pixels, after clipping) pools nothing useful.
MIN_PROPOSAL_SIDE = 1.0


def check_proposals(boxes: object, name: str) -> np.ndarray:
    """``[k, 4]`` finite float32 boxes with ``x1 <= x2`` and ``y1 <= y2``, else one line naming them."""
    array = np.asarray(boxes, dtype=np.float32)
    if array.size == 0:
        return np.zeros((0, 4), dtype=np.float32)
    if array.ndim != 2 or array.shape[1] != 4:
        raise UsageError(
            f"{name}: proposals must be a [k, 4] array of x1, y1, x2, y2, got shape {array.shape}"
        )
    if not np.isfinite(array).all():
        raise UsageError(f"{name}: proposals hold NaN or infinite coordinates")
    if (array[:, 2] < array[:, 0]).any() or (array[:, 3] < array[:, 1]).any():
        raise UsageError(f"{name}: proposals must be x1, y1, x2, y2 with x1 <= x2 and y1 <= y2")
    return array


def to_graph_pixels(boxes: np.ndarray, transform: ImageTransform) -> np.ndarray:
    """Source-pixel boxes, clipped to the image and without empty ones, in graph-input pixels."""
    out = boxes.astype(np.float32, copy=True)
    np.clip(out[:, 0::2], 0, np.float32(transform.original_width), out=out[:, 0::2])
    np.clip(out[:, 1::2], 0, np.float32(transform.original_height), out=out[:, 1::2])
    sides = np.minimum(out[:, 2] - out[:, 0], out[:, 3] - out[:, 1])
    out = out[sides >= MIN_PROPOSAL_SIDE]
    ratio_h, ratio_w = transform.ratios()
    out[:, 0::2] /= ratio_w
    out[:, 1::2] /= ratio_h
    return out


def pack_proposals(
    per_image: Sequence[object], transforms: Sequence[ImageTransform], config: ModelConfig, batch_rows: int
) -> dict[str, np.ndarray]:
    """The ``proposals`` and ``num_proposals`` inputs of one batch (padding images get none)."""
    if len(per_image) != len(transforms):
        raise UsageError(f"{len(per_image)} proposal sets for {len(transforms)} images; give one per image")
    rows = int(config.max_proposals or 0)
    proposals = np.zeros((batch_rows, rows, 4), dtype=np.float32)
    count = np.zeros((batch_rows,), dtype=np.int64)
    for i, (boxes, transform) in enumerate(zip(per_image, transforms, strict=True)):
        graph_boxes = to_graph_pixels(check_proposals(boxes, f"image {i}"), transform)[:rows]
        proposals[i, : len(graph_boxes)] = graph_boxes
        count[i] = len(graph_boxes)
    return {PROPOSALS_NAME: proposals, PROPOSAL_COUNT_NAME: count}
