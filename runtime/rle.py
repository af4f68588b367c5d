"""COCO run-length encoding of pasted masks, straight from the per-box crops.

COCO RLE runs over the image in column-major order, alternating zeros and ones, starting with
zeros. A crop only holds the box's pixels, so the runs are found from each crop column's edges
and shifted to image positions; no full-image mask is built. The compact string form is COCO's
(``counts`` as in ``pycocotools.mask.encode``): each count, minus the count two places before
from the fourth on, in 5-bit groups with a continuation bit, offset by 48 into ASCII.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from runtime.detections import MaskCrop


def crop_runs(crop: MaskCrop, image_height: int) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of the runs of ones, as column-major positions in the full image."""
    mask = crop.mask
    if mask.size == 0 or not mask.any():
        empty = np.zeros(0, np.int64)
        return empty, empty
    h, w = mask.shape
    cols = np.zeros((w, h + 2), dtype=np.int8)
    cols[:, 1:-1] = mask.T
    edges = np.diff(cols, axis=1)  # +1 where a run starts, -1 one past where it ends
    xs, ys = np.nonzero(edges)
    kinds = edges[xs, ys]
    position = (crop.left + xs.astype(np.int64)) * image_height + crop.top + ys
    starts, ends = position[kinds > 0], position[kinds < 0]
    # a run ending at a column's last image row continues into the next column's first row
    joined = np.flatnonzero(ends[:-1] == starts[1:])
    if joined.size:
        starts = np.delete(starts, joined + 1)
        ends = np.delete(ends, joined)
    return starts, ends


def counts_to_string(counts: list[int]) -> str:
    out = []
    for i, count in enumerate(counts):
        x = count - counts[i - 2] if i > 2 else count
        while True:
            chunk = x & 0x1F
            x >>= 5
            more = x != -1 if chunk & 0x10 else x != 0
            out.append(chr((chunk | 0x20 if more else chunk) + 48))
            if not more:
                break
    return "".join(out)


def encode_crop(crop: MaskCrop, image_size: tuple[int, int]) -> dict[str, Any]:
    h, w = image_size
    starts, ends = crop_runs(crop, h)
    bounds = np.empty(2 * len(starts) + 2, np.int64)
    bounds[0], bounds[-1] = 0, h * w
    bounds[1:-1:2], bounds[2:-1:2] = starts, ends
    counts = np.diff(bounds).tolist()
    if len(counts) > 1 and counts[-1] == 0:
        counts.pop()  # ones up to the last pixel: COCO ends with that run, not an empty zero run
    return {"size": [h, w], "counts": counts_to_string(counts)}


def encode_crops(crops: list[MaskCrop], image_size: tuple[int, int]) -> list[dict[str, Any]]:
    """COCO compressed RLE of each crop as a full-image mask (JSON-ready: counts is a str)."""
    return [encode_crop(c, image_size) for c in crops]
