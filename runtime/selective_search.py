"""Selective search region proposals (OpenCV contrib's ``ximgproc``), as R-CNN and Fast R-CNN used.

The image is over-segmented (Felzenszwalb) and regions are merged hierarchically by colour,
texture, size and fill similarity; every merged region's box is a proposal. It needs
``opencv-contrib-python-headless`` (the ``rcnn`` extra): the plain OpenCV wheel lacks ``ximgproc``.
Torch-free, so that the same proposals can feed a Fast R-CNN mode model on the runtime side.
"""

from __future__ import annotations

import cv2
import numpy as np

from .errors import UsageError

MODES = ("fast", "quality")
# Boxes narrower or shorter than this (pixels) are segmentation crumbs, not objects.
MIN_SIDE = 8
# Selective search is slow on large images; it runs on a copy at most this long side.
MAX_SEARCH_SIDE = 500


def selective_search_available() -> bool:
    return hasattr(cv2, "ximgproc") and hasattr(cv2.ximgproc, "segmentation")


def selective_search(
    image_bgr: np.ndarray, mode: str = "fast", max_proposals: int | None = 300
) -> np.ndarray:
    """``[k, 4]`` float32 x1, y1, x2, y2 boxes in ``image_bgr`` pixels, in selective search's order
    (hierarchy first: larger, more merged regions early), small ones dropped, at most ``max_proposals``."""
    if not selective_search_available():
        raise UsageError(
            "selective search needs OpenCV contrib's cv2.ximgproc: pip install 'edgercnn[rcnn]' "
            "(opencv-contrib-python-headless)"
        )
    if mode not in MODES:
        raise UsageError(f"selective search mode must be one of {', '.join(MODES)}, got {mode!r}")
    height, width = image_bgr.shape[:2]
    scale = min(1.0, MAX_SEARCH_SIDE / max(height, width))
    small = (
        image_bgr if scale == 1.0 else cv2.resize(image_bgr, (round(width * scale), round(height * scale)))
    )
    search = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    search.setBaseImage(small)
    if mode == "fast":
        search.switchToSelectiveSearchFast()
    else:
        search.switchToSelectiveSearchQuality()
    rects = np.asarray(search.process(), dtype=np.float32).reshape(-1, 4)  # x, y, w, h
    boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1) / np.float32(scale)
    keep = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) >= MIN_SIDE
    boxes = boxes[keep]
    return boxes[:max_proposals] if max_proposals is not None else boxes
