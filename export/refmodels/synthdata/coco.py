"""COCO json for the synthetic scenes: categories (person with keypoints/skeleton), RLE masks."""

from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from .scene import Scene

KEYPOINT_NAMES = [
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
]
# COCO's person skeleton (1-based keypoint indices), as in the COCO annotation files.
SKELETON = [
    [16, 14],
    [14, 12],
    [17, 15],
    [15, 13],
    [12, 13],
    [6, 12],
    [7, 13],
    [6, 7],
    [6, 8],
    [7, 9],
    [8, 10],
    [9, 11],
    [2, 3],
    [1, 2],
    [1, 3],
    [2, 4],
    [3, 5],
    [4, 6],
    [5, 7],
]
CATEGORIES: list[dict[str, Any]] = [
    {"id": 1, "name": "person", "supercategory": "person", "keypoints": KEYPOINT_NAMES, "skeleton": SKELETON},
    {"id": 2, "name": "car", "supercategory": "vehicle"},
    {"id": 3, "name": "plate", "supercategory": "vehicle"},
]
CATEGORY_IDS = {c["name"]: c["id"] for c in CATEGORIES}


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """Compressed RLE of a boolean mask, JSON-ready (counts as str)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def mask_box(mask: np.ndarray) -> list[float]:
    """Tight [x, y, w, h] box of a non-empty mask, in pixel-edge coordinates as COCO uses."""
    ys, xs = np.nonzero(mask)
    x0, y0 = float(xs.min()), float(ys.min())
    return [x0, y0, float(xs.max()) + 1.0 - x0, float(ys.max()) + 1.0 - y0]


def scene_annotations(scene: Scene, image_id: int, first_id: int) -> list[dict[str, Any]]:
    """COCO annotations of one scene: box from the visible mask, RLE, keypoints for people."""
    anns = []
    for k, obj in enumerate(scene.objects):
        ann: dict[str, Any] = {
            "id": first_id + k,
            "image_id": image_id,
            "category_id": CATEGORY_IDS[obj.category],
            "bbox": [round(v, 2) for v in mask_box(obj.mask)],
            "area": float(obj.mask.sum()),
            "segmentation": encode_mask(obj.mask),
            "iscrowd": 0,
        }
        if obj.keypoints is not None:
            kp = obj.keypoints
            # Floor to 0.01 px so a point just inside the image never rounds onto its border.
            xy = np.floor(kp[:, :2] * 100) / 100
            flat: list[float | int] = []
            for (x, y), v in zip(xy.tolist(), kp[:, 2].tolist(), strict=True):
                flat += [x, y, int(v)]
            ann["keypoints"] = flat
            ann["num_keypoints"] = int((kp[:, 2] > 0).sum())
        if obj.text is not None:
            ann["text"] = obj.text
        anns.append(ann)
    return anns


def build_coco_dict(
    images: list[dict[str, Any]], annotations: list[dict[str, Any]], info: dict[str, Any]
) -> dict[str, Any]:
    """The whole COCO file: info, images, annotations, categories."""
    return {
        "info": info,
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": CATEGORIES,
    }
