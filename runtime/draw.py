"""Annotated frames: boxes, labels with scores, masks, keypoints and skeleton; a stable colour per class."""

from __future__ import annotations

import colorsys

import cv2
import numpy as np

from .detections import Detections

# COCO person skeleton (pairs of keypoint indices), used when a model has the 17 COCO keypoints
COCO_SKELETON = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
    (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip
KEYPOINT_MIN_SCORE = 0.0  # torchvision reports heatmap logits; > 0 is its usual visibility cut


def class_colour(label: int) -> tuple[int, int, int]:
    """BGR colour from the class id alone (golden-ratio hue steps): same class, same colour, every run."""
    hue = (label * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.75, 1.0)
    return int(b * 255), int(g * 255), int(r * 255)


def _blend_masks(canvas: np.ndarray, dets: Detections, alpha: float) -> None:
    """Masks -> a one-byte colour-slot map (cheap per mask), then one colour lookup and blend pass."""
    if not dets.mask_crops:
        return
    slots = np.zeros(canvas.shape[:2], np.uint8)
    palette: dict[int, int] = {}
    for crop, label in zip(dets.mask_crops, dets.labels.tolist(), strict=True):
        if crop.mask.size == 0:
            continue
        slot = palette.setdefault(label, min(len(palette) + 1, 255))
        h, w = crop.mask.shape
        np.copyto(slots[crop.top : crop.top + h, crop.left : crop.left + w], slot, where=crop.mask)
    if not palette:
        return
    lut = np.zeros((256, 1, 3), np.uint8)
    for label, slot in palette.items():
        lut[slot, 0] = class_colour(label)
    colours = cv2.LUT(cv2.merge([slots, slots, slots]), lut)
    blended = cv2.addWeighted(canvas, 1.0 - alpha, colours, alpha, 0.0)
    painted = (slots > 0).view(np.uint8)
    cv2.copyTo(blended, painted, canvas)


def _draw_keypoints(canvas: np.ndarray, dets: Detections) -> None:
    if dets.keypoints is None:
        return
    scale = max(1, round(max(canvas.shape[:2]) / 640))
    skeleton = COCO_SKELETON if dets.keypoints.shape[1] == 17 else ()
    for kps, label in zip(dets.keypoints, dets.labels.tolist(), strict=True):
        colour = class_colour(label)
        visible = kps[:, 2] > KEYPOINT_MIN_SCORE
        pts = [(round(x), round(y)) for x, y in kps[:, :2].tolist()]
        for a, b in skeleton:
            if visible[a] and visible[b]:
                cv2.line(canvas, pts[a], pts[b], colour, scale, cv2.LINE_AA)
        for p, vis in zip(pts, visible.tolist(), strict=True):
            if vis:
                cv2.circle(canvas, p, 2 * scale, (255, 255, 255), -1, cv2.LINE_AA)
                cv2.circle(canvas, p, 2 * scale, colour, 1, cv2.LINE_AA)


def annotate(image_bgr: np.ndarray, dets: Detections, mask_alpha: float = 0.45) -> np.ndarray:
    """A copy of the image with the detections drawn on it."""
    canvas = image_bgr.copy()
    _blend_masks(canvas, dets, mask_alpha)
    thickness = max(1, round(max(canvas.shape[:2]) / 500))
    font_scale = max(0.4, max(canvas.shape[:2]) / 1600)
    names = dets.label_names
    for i, (box, score, label) in enumerate(zip(dets.boxes, dets.scores, dets.labels.tolist(), strict=True)):
        colour = class_colour(label)
        x1, y1, x2, y2 = (round(v) for v in box.tolist())
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thickness, cv2.LINE_AA)
        text = f"{names[i]} {score:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        ty = y1 - 2 if y1 - th - base - 2 >= 0 else y1 + th + base + 2
        cv2.rectangle(canvas, (x1, ty - th - base), (x1 + tw + 2, ty + base - 1), colour, -1)
        cv2.putText(
            canvas, text, (x1 + 1, ty - 1), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), 1, cv2.LINE_AA
        )
    _draw_keypoints(canvas, dets)
    return canvas
