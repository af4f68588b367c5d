"""COCO run-length encoding of pasted masks (optional: needs pycocotools, the ``coco`` extra)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import numpy as np

from runtime.errors import SinkError

if TYPE_CHECKING:
    from runtime.detections import MaskCrop


def _mask_utils() -> Any:
    try:
        return importlib.import_module("pycocotools.mask")
    except ModuleNotFoundError as exc:
        raise SinkError("mask RLE output needs pycocotools (pip install 'edgercnn[coco]')") from exc


def encode_crops(crops: list[MaskCrop], image_size: tuple[int, int]) -> list[dict[str, Any]]:
    """Full-image RLE of each crop; counts decoded to str so the result is JSON-ready."""
    mask_utils = _mask_utils()
    h, w = image_size
    out = []
    full = np.zeros((h, w), dtype=np.uint8, order="F")
    for crop in crops:
        ch, cw = crop.mask.shape
        full[:] = 0
        full[crop.top : crop.top + ch, crop.left : crop.left + cw] = crop.mask
        rle = mask_utils.encode(full)
        rle["counts"] = rle["counts"].decode("ascii")
        out.append(rle)
    return out
