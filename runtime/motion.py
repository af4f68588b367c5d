"""Motion regions of a fixed camera as proposals for a Fast R-CNN mode model.

On a fixed camera what moves is what is worth classifying: OpenCV's MOG2 background subtractor
marks moving pixels, morphology removes speckle and closes holes, each remaining blob's bounding
box (grown by a margin, since the box head regresses better with some context) is a proposal,
and boxes that overlap or nearly touch are merged, so that one walking person split in two blobs
is one region. Largest first, at most ``max_proposals`` (the graph's P). The subtractor is
stateful: one ``MotionProposals`` per video stream, fed every frame in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from .errors import UsageError


@dataclass(frozen=True)
class MotionSettings:
    """MOG2 and post-processing parameters; pixel sizes are in source-frame pixels."""

    history: int = 200  # frames the background model remembers
    var_threshold: float = 16.0  # MOG2's squared Mahalanobis distance for "foreground"
    detect_shadows: bool = True  # shadows are marked grey (127) and then dropped
    # Background update rate per frame. OpenCV's default (-1: 1/frames seen) learns a slow object
    # into the background within a few frames early on; 0.01 keeps a stopped object ~100 frames.
    learning_rate: float = 0.01
    open_kernel: int = 3  # opening: removes isolated noisy pixels
    close_kernel: int = 9  # closing: joins the parts of one moving object
    min_area: float = 48.0  # blobs smaller than this many pixels are noise
    merge_gap: float = 8.0  # boxes closer than this are one region
    margin: float = 0.05  # each box grows by this share of its size on every side
    # More foreground than this share of the frame: the model is (re)learning the background
    # (first frames, a light switched on); no proposal is better than a frame-sized one.
    max_foreground: float = 0.5
    # Windows tried inside each region, as shares of its size: a region often holds several objects
    # that walk together (one blob), and the box head refines a proposal into one box per class.
    window_scales: tuple[float, ...] = (0.66, 0.4)


def merge_boxes(boxes: np.ndarray, gap: float) -> np.ndarray:
    """Union of every group of ``[k, 4]`` boxes that overlap once grown by ``gap``, until none do."""
    merged = [b.astype(np.float32) for b in np.asarray(boxes, dtype=np.float32).reshape(-1, 4)]
    changed = True
    while changed:
        changed = False
        for i in range(len(merged)):
            for j in range(i + 1, len(merged)):
                a, b = merged[i], merged[j]
                if a[0] - gap <= b[2] and b[0] - gap <= a[2] and a[1] - gap <= b[3] and b[1] - gap <= a[3]:
                    merged[i] = np.array(
                        [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])], dtype=np.float32
                    )
                    del merged[j]
                    changed = True
                    break
            if changed:
                break
    return np.array(merged, dtype=np.float32).reshape(-1, 4)


def region_windows(region: np.ndarray, scales: tuple[float, ...]) -> np.ndarray:
    """Sub-windows of ``region`` at each scale (its aspect ratio, and half / double width), stepping
    half a window, so that the objects inside a merged region have a proposal of their own."""
    x1, y1, x2, y2 = (float(v) for v in region)
    width, height = x2 - x1, y2 - y1
    windows = []
    for scale in scales:
        for w_share, h_share in ((scale, scale), (scale / 2, scale), (scale, scale / 2)):
            w, h = w_share * width, h_share * height
            xs = np.arange(x1, x2 - w + 1e-3, max(w / 2, 1.0))
            ys = np.arange(y1, y2 - h + 1e-3, max(h / 2, 1.0))
            windows += [(x, y, x + w, y + h) for y in ys for x in xs]
    return np.array(windows, dtype=np.float32).reshape(-1, 4)


def largest_first(boxes: np.ndarray, limit: int | None) -> np.ndarray:
    """Boxes by decreasing area (the order a truncated proposal list keeps), at most ``limit``."""
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    order = np.argsort(-areas, kind="stable")
    return boxes[order[:limit] if limit is not None else order]


class MotionProposals:
    """Per-frame motion regions of one stream: ``proposals(frame)`` -> ``[k, 4]`` float32 boxes."""

    def __init__(self, settings: MotionSettings | None = None, max_proposals: int | None = None) -> None:
        self.settings = settings or MotionSettings()
        if max_proposals is not None and max_proposals < 1:
            raise UsageError(f"max_proposals must be at least 1, got {max_proposals}")
        self.max_proposals = max_proposals
        s = self.settings
        self._subtractor = cv2.createBackgroundSubtractorMOG2(
            history=s.history, varThreshold=s.var_threshold, detectShadows=s.detect_shadows
        )
        self._open = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (s.open_kernel, s.open_kernel))
        self._close = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (s.close_kernel, s.close_kernel))
        self._size: tuple[int, int] | None = None
        self.last_foreground: np.ndarray | None = None  # the cleaned mask of the last frame, to inspect

    def foreground(self, frame_bgr: np.ndarray) -> np.ndarray:
        """The cleaned ``uint8`` mask (255: moving) of ``frame_bgr``; updates the background model."""
        if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3 or frame_bgr.dtype != np.uint8:
            raise UsageError(
                f"motion proposals need BGR uint8 HxWx3 frames, got {frame_bgr.dtype} {frame_bgr.shape}"
            )
        size = frame_bgr.shape[:2]
        if self._size is not None and size != self._size:
            raise UsageError(
                f"motion proposals: frame size changed from {self._size[1]}x{self._size[0]} to "
                f"{size[1]}x{size[0]} within one stream; use one MotionProposals per stream"
            )
        self._size = size
        s = self.settings
        raw = self._subtractor.apply(frame_bgr, learningRate=s.learning_rate)
        mask = np.where(raw == 255, 255, 0).astype(np.uint8)  # shadows (127) are not motion
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self._open)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, self._close)
        self.last_foreground = mask
        return mask

    def __call__(self, frame_bgr: np.ndarray) -> np.ndarray:
        """The next frame's ``[k, 4]`` proposals, in its pixels, best first (see the module doc)."""
        s = self.settings
        mask = self.foreground(frame_bgr)
        height, width = mask.shape
        if np.count_nonzero(mask) > s.max_foreground * mask.size:
            return np.zeros((0, 4), dtype=np.float32)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        boxes = []
        for contour in contours:
            if cv2.contourArea(contour) < s.min_area:
                continue
            x, y, w, h = cv2.boundingRect(contour)
            dx, dy = s.margin * w, s.margin * h
            boxes.append(
                (max(x - dx, 0.0), max(y - dy, 0.0), min(x + w + dx, width), min(y + h + dy, height))
            )
        blobs = np.array(boxes, dtype=np.float32).reshape(-1, 4)
        merged = largest_first(merge_boxes(blobs, s.merge_gap), None)
        # Best first, for a truncated list: whole regions, then single blobs, then windows.
        parts = [merged, largest_first(blobs, None)]
        parts += [region_windows(region, s.window_scales) for region in merged]
        candidates = np.concatenate(parts)
        _, first = np.unique(candidates.round(1), axis=0, return_index=True)
        unique = candidates[np.sort(first)]
        return unique[: self.max_proposals] if self.max_proposals is not None else unique


class StreamMotionProposals:
    """One ``MotionProposals`` per stream name, made on a stream's first frame (for the service)."""

    def __init__(self, settings: MotionSettings | None = None, max_proposals: int | None = None) -> None:
        self.settings = settings
        self.max_proposals = max_proposals
        self.streams: dict[str, MotionProposals] = {}

    def __call__(self, frame: Any) -> np.ndarray:
        """``frame`` is a ``sources.Frame``; its ``stream`` picks the background model."""
        source = self.streams.get(frame.stream)
        if source is None:
            source = self.streams[frame.stream] = MotionProposals(self.settings, self.max_proposals)
        return source(frame.image)
