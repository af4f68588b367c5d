"""The runtime's result type: detections of one image, in that image's pixels."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .rle import MaskCrop, encode_crops

__all__ = ["Detections", "MaskCrop"]


@dataclass
class Detections:
    """Detections of one image: boxes (K, 4) float32 x1y1x2y2 in original pixels, clipped.

    Masks are kept as per-box crops (a full (K, H, W) frame stack of a 1080p image with 100
    detections is 200 MB); ``masks`` builds that stack on demand.
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    image_size: tuple[int, int]  # (height, width)
    mask_crops: list[MaskCrop] | None = None
    keypoints: np.ndarray | None = None  # (K, P, 3): x, y, score in original pixels
    keypoint_names: tuple[str, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage, for this image's batch
    _masks: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def label_names(self) -> list[str]:
        names = self.class_names
        return [names[i] if 0 <= i < len(names) else str(int(i)) for i in self.labels.tolist()]

    @property
    def masks(self) -> np.ndarray | None:
        """(K, H, W) bool masks in image pixels, or None for models without masks."""
        if self.mask_crops is None:
            return None
        if self._masks is None:
            h, w = self.image_size
            stack = np.zeros((len(self.mask_crops), h, w), dtype=bool)
            for i, crop in enumerate(self.mask_crops):
                ch, cw = crop.mask.shape
                stack[i, crop.top : crop.top + ch, crop.left : crop.left + cw] = crop.mask
            self._masks = stack
        return self._masks

    def mask_rles(self) -> list[dict[str, Any]] | None:
        """COCO compressed RLE per mask, as ``pycocotools.mask.encode`` gives (counts as str)."""
        if self.mask_crops is None:
            return None
        return encode_crops(self.mask_crops, self.image_size)

    def select(self, keep: np.ndarray) -> Detections:
        """A subset (boolean or index array), e.g. for a score threshold or class filter."""
        idx = np.flatnonzero(keep) if keep.dtype == bool else keep
        crops = None if self.mask_crops is None else [self.mask_crops[i] for i in idx.tolist()]
        return Detections(
            boxes=self.boxes[idx],
            scores=self.scores[idx],
            labels=self.labels[idx],
            class_names=self.class_names,
            image_size=self.image_size,
            mask_crops=crops,
            keypoints=None if self.keypoints is None else self.keypoints[idx],
            keypoint_names=self.keypoint_names,
            timings=dict(self.timings),
        )

    def to_json(self, with_masks: bool = False) -> list[dict[str, Any]]:
        """One dict per detection (plain floats), for the JSONL sink."""
        out = []
        names = self.label_names
        rles = self.mask_rles() if with_masks and self.mask_crops is not None else None
        for i in range(len(self)):
            item: dict[str, Any] = {
                "box": [round(float(v), 2) for v in self.boxes[i]],
                "score": round(float(self.scores[i]), 5),
                "label": int(self.labels[i]),
                "name": names[i],
            }
            if self.keypoints is not None:
                item["keypoints"] = [[round(float(v), 2) for v in kp] for kp in self.keypoints[i]]
            if rles is not None:
                item["mask"] = rles[i]
            out.append(item)
        return out
