"""Pasted masks as per-box crops, and their COCO run-length encoding straight from the crops.

COCO RLE runs over the image in column-major order, alternating zeros and ones, starting with
zeros. A crop only holds the box's pixels, so the runs are found from each crop column's edges
and shifted to image positions; no full-image mask is built. The compact string form is COCO's
(``counts`` as in ``pycocotools.mask.encode``): each count, minus the count two places before
from the fourth on, in 5-bit groups with a continuation bit, offset by 48 into ASCII.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class MaskCrop:
    """A pasted mask stored only where it can be non-zero: ``mask`` (h, w) bool at (top, left)."""

    top: int
    left: int
    mask: np.ndarray


def crop_runs(crop: MaskCrop, image_height: int) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of the runs of ones, as column-major positions in the full image."""
    mask = crop.mask
    if mask.size == 0 or not mask.any():
        empty = np.zeros(0, np.int64)
        return empty, empty
    h, w = mask.shape
    padded = np.zeros((h + 2, w), dtype=np.int8)
    padded[1:-1] = mask  # row-major all the way (no transposed copy); sorted to column-major below
    edges = np.diff(padded, axis=0)  # +1 where a run starts in a column, -1 one past where it ends
    flat = edges.ravel()
    found = np.flatnonzero(flat)
    kinds = flat[found]
    ys, xs = np.divmod(found, w)
    position = (crop.left + xs) * image_height + crop.top + ys
    starts, ends = np.sort(position[kinds > 0]), np.sort(position[kinds < 0])
    # a run ending at a column's last image row continues into the next column's first row
    joined = np.flatnonzero(ends[:-1] == starts[1:])
    if joined.size:
        starts = np.delete(starts, joined + 1)
        ends = np.delete(ends, joined)
    return starts, ends


def counts_to_string(counts: list[int] | np.ndarray) -> str:
    """COCO's compact counts string, vectorized over counts (masks have thousands of runs)."""
    values = np.asarray(counts, dtype=np.int64).copy()
    if values.size == 0:
        return ""
    values[3:] -= np.asarray(counts, dtype=np.int64)[1:-2]
    steps = 13  # 64-bit values in 5-bit groups
    chunks = np.zeros((values.size, steps), np.uint8)
    active = np.zeros((values.size, steps), bool)
    x = values
    alive = np.ones(values.size, bool)
    for k in range(steps):
        chunk = (x & 0x1F).astype(np.uint8)
        x = x >> 5
        more = np.where(chunk & 0x10, x != -1, x != 0) & alive
        chunks[:, k] = np.where(more, chunk | 0x20, chunk) + 48
        active[:, k] = alive
        alive = more
        if not alive.any():
            break
    return chunks[active].tobytes().decode("ascii")


def encode_crop(crop: MaskCrop, image_size: tuple[int, int]) -> dict[str, Any]:
    h, w = image_size
    starts, ends = crop_runs(crop, h)
    bounds = np.empty(2 * len(starts) + 2, np.int64)
    bounds[0], bounds[-1] = 0, h * w
    bounds[1:-1:2], bounds[2:-1:2] = starts, ends
    counts = np.diff(bounds)
    if len(counts) > 1 and counts[-1] == 0:
        counts = counts[:-1]  # ones up to the last pixel: COCO ends with that run, not an empty zero run
    return {"size": [h, w], "counts": counts_to_string(counts)}


def encode_crops(crops: list[MaskCrop], image_size: tuple[int, int]) -> list[dict[str, Any]]:
    """COCO compressed RLE of each crop as a full-image mask (JSON-ready: counts is a str)."""
    return [encode_crop(c, image_size) for c in crops]
