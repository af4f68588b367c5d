"""Graph outputs -> detections in original image pixels, as torchvision's ``transform.postprocess``.

Boxes and keypoints are scaled by ``original / resized`` in float32 (``resize_boxes``,
``resize_keypoints``); keypoint heatmaps are first decoded for the kept detections
(``runtime/keypoints.py``). Masks follow ``paste_masks_in_image``: the 28x28 probabilities are zero-padded
by one pixel, the box is expanded by (M + 2) / M around its centre and truncated to integers, the
padded mask is resized bilinearly (align_corners=False) to the expanded box's size (w + 1, h + 1),
and the part inside the image is kept, thresholded at 0.5. Each mask is computed only inside its
box and stored as a crop, so cost follows box area, not image size times detections.
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

from .config import ModelConfig
from .contract import KEYPOINT_HEATMAPS, KEYPOINTS
from .detections import Detections, MaskCrop
from .errors import UsageError
from .graph_check import check_labels
from .keypoints import decode_heatmaps
from .preprocess import ImageTransform

MASK_THRESHOLD = 0.5


def scale_boxes(boxes: np.ndarray, transform: ImageTransform) -> np.ndarray:
    """Graph-input boxes -> original image pixels, clipped to the image."""
    ratio_h, ratio_w = transform.ratios()
    out = boxes.astype(np.float32, copy=True)
    out[:, 0::2] *= ratio_w
    out[:, 1::2] *= ratio_h
    np.clip(out[:, 0::2], 0, np.float32(transform.original_width), out=out[:, 0::2])
    np.clip(out[:, 1::2], 0, np.float32(transform.original_height), out=out[:, 1::2])
    return out


def scale_keypoints(keypoints: np.ndarray, transform: ImageTransform) -> np.ndarray:
    ratio_h, ratio_w = transform.ratios()
    out = keypoints.astype(np.float32, copy=True)
    out[..., 0] *= ratio_w
    out[..., 1] *= ratio_h
    return out


def expanded_int_boxes(boxes: np.ndarray, mask_size: int, padding: int = 1) -> np.ndarray:
    """torchvision's ``expand_boxes(boxes, (M + 2p) / M).to(int64)`` in float32, truncating."""
    scale = np.float32(float(mask_size + 2 * padding) / mask_size)
    b = boxes.astype(np.float32)
    half = np.float32(0.5)
    w_half = (b[:, 2] - b[:, 0]) * half * scale
    h_half = (b[:, 3] - b[:, 1]) * half * scale
    x_c = (b[:, 2] + b[:, 0]) * half
    y_c = (b[:, 3] + b[:, 1]) * half
    expanded = np.stack([x_c - w_half, y_c - h_half, x_c + w_half, y_c + h_half], axis=1)
    return np.trunc(expanded).astype(np.int64)


def paste_masks(
    masks: np.ndarray, boxes: np.ndarray, image_size: tuple[int, int], threshold: float = MASK_THRESHOLD
) -> list[MaskCrop]:
    """(K, M, M) mask probabilities + (K, 4) image boxes -> K crops of bool pixels inside the image."""
    im_h, im_w = image_size
    k, m = masks.shape[0], masks.shape[-1]
    int_boxes = expanded_int_boxes(boxes, m).tolist()
    padded = np.zeros((m + 2, m + 2), dtype=np.float32)
    crops = []
    for i in range(k):
        x0, y0, x1, y1 = int_boxes[i]
        w = max(x1 - x0 + 1, 1)
        h = max(y1 - y0 + 1, 1)
        cx0, cy0 = max(x0, 0), max(y0, 0)
        cx1, cy1 = min(x1 + 1, im_w), min(y1 + 1, im_h)
        if cx1 <= cx0 or cy1 <= cy0:
            crops.append(MaskCrop(0, 0, np.zeros((0, 0), dtype=bool)))
            continue
        padded[1:-1, 1:-1] = masks[i]
        resized = cv2.resize(padded, (w, h), interpolation=cv2.INTER_LINEAR)
        part = resized[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
        crops.append(MaskCrop(cy0, cx0, part > threshold))
    return crops


def class_ids(classes: Iterable[int | str] | None, class_names: tuple[str, ...]) -> np.ndarray | None:
    """Class filter from ids or names (case-insensitive); unknown names are an error."""
    if classes is None:
        return None
    lookup = {name.lower(): i for i, name in enumerate(class_names)}
    ids = []
    for c in classes:
        if isinstance(c, str) and not c.strip().lstrip("-").isdigit():
            if c.strip().lower() not in lookup:
                raise UsageError(
                    f"unknown class {c!r}; the model's classes are: {', '.join(class_names[1:])}"
                )
            ids.append(lookup[c.strip().lower()])
        else:
            ids.append(check_class_id(c, class_names))
    return np.array(sorted(set(ids)), dtype=np.int64)


def check_class_id(value: int | str, class_names: tuple[str, ...]) -> int:
    """A class id the model has (1..N-1; 0 is the background, which no detection carries)."""
    class_id = int(value)
    if not 1 <= class_id < len(class_names):
        named = ", ".join(f"{i} {name}" for i, name in enumerate(class_names) if i)
        raise UsageError(f"unknown class id {class_id}; the model's classes are: {named}")
    return class_id


def postprocess(
    outputs: dict[str, np.ndarray],
    transforms: list[ImageTransform],
    config: ModelConfig,
    score_threshold: float | None = None,
    classes: np.ndarray | None = None,
) -> list[Detections]:
    """Batch outputs -> one ``Detections`` per real (non-padding) image; padding rows never read."""
    results = []
    num = outputs["num_detections"].reshape(-1)
    for i, transform in enumerate(transforms):
        n = int(min(max(num[i], 0), outputs["boxes"].shape[1]))
        scores = outputs["scores"][i, :n].astype(np.float32)
        labels = outputs["labels"][i, :n].astype(np.int64)
        check_labels(labels, config)
        keep = np.ones(n, dtype=bool)
        if score_threshold is not None:
            keep &= scores >= score_threshold
        if classes is not None:
            keep &= np.isin(labels, classes)
        idx = np.flatnonzero(keep)
        boxes = scale_boxes(outputs["boxes"][i, idx], transform)
        image_size = (transform.original_height, transform.original_width)
        crops = None
        if "masks" in outputs:
            masks = outputs["masks"][i, idx]
            if masks.ndim == 4:  # (K, 1, M, M) from graphs that keep the channel axis
                masks = masks[:, 0]
            crops = paste_masks(masks.astype(np.float32, copy=False), boxes, image_size)
        keypoints = None
        if KEYPOINT_HEATMAPS in outputs:  # decoded here, for the kept detections only
            decoded = decode_heatmaps(outputs[KEYPOINT_HEATMAPS][i, idx], outputs["boxes"][i, idx])
            keypoints = scale_keypoints(decoded, transform)
        elif KEYPOINTS in outputs:
            keypoints = scale_keypoints(outputs[KEYPOINTS][i, idx], transform)
        results.append(
            Detections(
                boxes=boxes,
                scores=scores[idx],
                labels=labels[idx],
                class_names=config.class_names,
                image_size=image_size,
                mask_crops=crops,
                keypoints=keypoints,
                keypoint_names=config.keypoint_names,
            )
        )
    return results
