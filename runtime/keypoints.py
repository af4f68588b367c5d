"""Keypoint heatmaps -> keypoints on the host, for the detections that are kept only.

torchvision's ``heatmaps_to_keypoints`` upsamples each RoI's ``S x S`` heatmap bicubically to the
RoI's own size (``ceil(w) x ceil(h)``, data dependent) and takes the arg-max. A static graph has to
do that for every padded row at the largest size it could see, which on a CPU costs more than the
whole network; here it runs once per detection the caller keeps, after the score and class
filters. OpenCV's ``INTER_CUBIC`` is the same kernel as PyTorch's ``bicubic`` with
``align_corners=False`` (A = -0.75, half-pixel centres, border taps clamped): values agree to float
rounding, so the arg-max and the score are torchvision's. numpy and OpenCV only.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# OpenCV resizes at most this many channels in one call (CV_CN_MAX).
_MAX_CHANNELS = 512


def _upsample(maps: np.ndarray, height: int, width: int) -> np.ndarray:
    """``[P, S, S]`` -> ``[P, height, width]`` bicubic, all keypoints of one RoI in one call."""
    parts = []
    for start in range(0, maps.shape[0], _MAX_CHANNELS):
        chunk = np.ascontiguousarray(maps[start : start + _MAX_CHANNELS].transpose(1, 2, 0))
        resized = cv2.resize(chunk, (width, height), interpolation=cv2.INTER_CUBIC)
        parts.append(resized.reshape(height, width, -1).transpose(2, 0, 1))
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)


def decode_heatmaps(heatmaps: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """``[K, P, S, S]`` heatmap logits and ``[K, 4]`` boxes (graph-input pixels) -> ``[K, P, 3]``.

    Each row is ``(x, y, score)`` in the boxes' pixels, ``score`` the upsampled logit at the
    arg-max, as ``keypointrcnn_inference`` gives before ``transform.postprocess`` rescales.
    """
    k = heatmaps.shape[0]
    p = heatmaps.shape[1] if heatmaps.ndim == 4 else 0
    out = np.zeros((k, p, 3), dtype=np.float32)
    for i in range(k):
        x1, y1, x2, y2 = (np.float32(v) for v in boxes[i])
        width = max(x2 - x1, np.float32(1.0))
        height = max(y2 - y1, np.float32(1.0))
        width_ceil, height_ceil = math.ceil(width), math.ceil(height)
        roi = _upsample(heatmaps[i].astype(np.float32, copy=False), height_ceil, width_ceil)
        flat = roi.reshape(p, -1)
        pos = flat.argmax(axis=1)  # first maximum in row-major order, as torch's argmax
        x_int = pos % width_ceil
        y_int = pos // width_ceil
        out[i, :, 0] = (x_int.astype(np.float32) + 0.5) * (width / np.float32(width_ceil)) + x1
        out[i, :, 1] = (y_int.astype(np.float32) + 0.5) * (height / np.float32(height_ceil)) + y1
        out[i, :, 2] = flat[np.arange(p), pos]
    return out
