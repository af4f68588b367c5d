"""Draw a shape on the image and, with the same geometry, on the object's own mask.

Every object is drawn through a ``Painter`` so its instance mask is exact by construction: the
silhouette calls write to both; details inside the silhouette (windows, eyes) only to the image.
"""

from __future__ import annotations

import cv2
import numpy as np

Color = tuple[int, int, int]


def _pts(points: np.ndarray) -> np.ndarray:
    """Polygon points in the int32 (N, 1, 2) layout OpenCV expects."""
    return np.round(np.asarray(points, dtype=np.float64)).astype(np.int32).reshape(-1, 1, 2)


class Painter:
    """Draws silhouettes on ``image`` and on a fresh boolean mask of the same size."""

    def __init__(self, image: np.ndarray) -> None:
        self.image = image
        self.mask = np.zeros(image.shape[:2], dtype=np.uint8)

    # Silhouette primitives: image and mask.
    def polygon(self, points: np.ndarray, color: Color) -> None:
        cv2.fillPoly(self.image, [_pts(points)], color, lineType=cv2.LINE_AA)
        cv2.fillPoly(self.mask, [_pts(points)], 1)

    def circle(self, center: tuple[float, float], radius: float, color: Color) -> None:
        c = (round(center[0]), round(center[1]))
        r = max(1, round(radius))
        cv2.circle(self.image, c, r, color, -1, lineType=cv2.LINE_AA)
        cv2.circle(self.mask, c, r, 1, -1)

    def line(self, p0: np.ndarray, p1: np.ndarray, color: Color, thickness: float) -> None:
        a = (round(float(p0[0])), round(float(p0[1])))
        b = (round(float(p1[0])), round(float(p1[1])))
        t = max(1, round(thickness))
        cv2.line(self.image, a, b, color, t, lineType=cv2.LINE_AA)
        cv2.line(self.mask, a, b, 1, t)

    def rect(self, x0: float, y0: float, x1: float, y1: float, color: Color) -> None:
        self.polygon(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]), color)

    # Details: image only.
    def detail_polygon(self, points: np.ndarray, color: Color) -> None:
        cv2.fillPoly(self.image, [_pts(points)], color, lineType=cv2.LINE_AA)

    def detail_rect(self, x0: float, y0: float, x1: float, y1: float, color: Color) -> None:
        self.detail_polygon(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]), color)

    def detail_circle(self, center: tuple[float, float], radius: float, color: Color) -> None:
        c = (round(center[0]), round(center[1]))
        cv2.circle(self.image, c, max(1, round(radius)), color, -1, lineType=cv2.LINE_AA)

    def result(self) -> np.ndarray:
        return self.mask.astype(bool)


def random_color(rng: np.random.Generator, low: int = 20, high: int = 235) -> Color:
    """A random BGR colour."""
    c = rng.integers(low, high + 1, size=3)
    return (int(c[0]), int(c[1]), int(c[2]))


def shade(color: Color, factor: float) -> Color:
    """The same colour, darker (< 1) or lighter (> 1)."""
    return tuple(int(np.clip(c * factor, 0, 255)) for c in color)  # type: ignore[return-value]
