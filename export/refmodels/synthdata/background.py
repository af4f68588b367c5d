"""Cluttered street backgrounds: sky, building facades with windows and signs, road, texture.

The clutter matters: blank signs look like plates without digits, windows and poles give edges,
so a detector must learn the objects rather than "anything that is not flat".
"""

from __future__ import annotations

import cv2
import numpy as np

from .painter import random_color, shade


def smooth_noise(
    rng: np.random.Generator, height: int, width: int, cells: int, amplitude: float
) -> np.ndarray:
    """Low-frequency noise in [-amplitude, amplitude], upsampled from a coarse random grid."""
    coarse = rng.uniform(-1, 1, size=(max(2, cells * height // width), cells)).astype(np.float32)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC) * amplitude


def _vertical_gradient(height: int, width: int, top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    t = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    return np.broadcast_to(top * (1 - t) + bottom * t, (height, width, 3)).copy()


def _building(img: np.ndarray, rng: np.random.Generator, x0: int, x1: int, top: int, base: int) -> None:
    """A facade with a grid of windows and, sometimes, signs (some look like blank plates)."""
    wall = random_color(rng, 60, 210)
    cv2.rectangle(img, (x0, top), (x1, base), wall, -1)
    win_w = int(rng.integers(6, 16))
    win_h = int(rng.integers(8, 18))
    gap_x = int(rng.integers(5, 12))
    gap_y = int(rng.integers(6, 14))
    glass = shade(random_color(rng, 40, 200), 0.7)
    for y in range(top + gap_y, base - win_h - 4, win_h + gap_y):
        for x in range(x0 + gap_x, x1 - win_w, win_w + gap_x):
            lit = rng.random() < 0.2
            cv2.rectangle(img, (x, y), (x + win_w, y + win_h), (90, 200, 230) if lit else glass, -1)
    for _ in range(int(rng.integers(0, 3))):
        sw = int(rng.integers(15, 60))
        sh = int(sw * rng.uniform(0.2, 0.6))
        sx = int(rng.integers(x0, max(x0 + 1, x1 - sw)))
        sy = int(rng.integers(top, max(top + 1, base - sh)))
        cv2.rectangle(img, (sx, sy), (sx + sw, sy + sh), random_color(rng), -1)
        if rng.random() < 0.5:  # a few strokes that are not digits
            for k in range(int(rng.integers(1, 4))):
                yy = sy + (k + 1) * sh // 5
                cv2.line(img, (sx + 3, yy), (sx + sw - 3, yy), random_color(rng), 1)


def _road(img: np.ndarray, rng: np.random.Generator, horizon: int) -> None:
    """Asphalt or paving below the horizon, with perspective lane markings or tile joints."""
    height, width = img.shape[:2]
    vp = (int(rng.integers(width // 4, 3 * width // 4)), horizon)
    if rng.random() < 0.6:
        for xb in rng.uniform(-width * 0.5, width * 1.5, size=int(rng.integers(1, 4))):
            for t0 in np.arange(0.05, 1.0, 0.12):
                t1 = t0 + 0.06
                p0 = (int(vp[0] + (xb - vp[0]) * t0), int(horizon + (height - horizon) * t0))
                p1 = (int(vp[0] + (xb - vp[0]) * t1), int(horizon + (height - horizon) * t1))
                cv2.line(img, p0, p1, (200, 200, 200), max(1, int(4 * t1)))
    else:
        joint = shade(random_color(rng, 60, 200), 0.6)
        for t in np.linspace(0, 1, int(rng.integers(5, 12))) ** 2:
            y = int(horizon + (height - horizon) * t)
            cv2.line(img, (0, y), (width, y), joint, 1)
        for xb in np.linspace(-width, 2 * width, int(rng.integers(6, 16))):
            cv2.line(img, vp, (int(xb), height), joint, 1)


def _clutter(img: np.ndarray, rng: np.random.Generator, horizon: int) -> None:
    """Poles, bushes, bins and stray shapes behind the objects."""
    height, width = img.shape[:2]
    for _ in range(int(rng.integers(2, 7))):
        kind = rng.integers(4)
        x = int(rng.integers(0, width))
        y = int(rng.integers(horizon - 20, height))
        if kind == 0:  # pole
            cv2.rectangle(
                img,
                (x, int(rng.integers(0, horizon))),
                (x + int(rng.integers(2, 6)), y),
                random_color(rng, 30, 140),
                -1,
            )
        elif kind == 1:  # bush
            green = (int(rng.integers(20, 80)), int(rng.integers(90, 180)), int(rng.integers(20, 90)))
            for _ in range(int(rng.integers(3, 8))):
                c = (x + int(rng.normal(0, 10)), y + int(rng.normal(0, 5)))
                cv2.circle(img, c, int(rng.integers(5, 16)), shade(green, rng.uniform(0.7, 1.2)), -1)
        elif kind == 2:  # bin / box
            w, h = int(rng.integers(8, 30)), int(rng.integers(10, 35))
            cv2.rectangle(img, (x, y - h), (x + w, y), random_color(rng), -1)
        else:  # stray curve
            pts = np.cumsum(rng.normal(0, 8, size=(6, 2)), axis=0) + np.array([x, y])
            cv2.polylines(img, [pts.astype(np.int32)], False, random_color(rng), int(rng.integers(1, 4)))


def make_background(rng: np.random.Generator, width: int, height: int) -> tuple[np.ndarray, int]:
    """A BGR uint8 street scene and its horizon row (ground below, where objects stand)."""
    horizon = int(height * rng.uniform(0.28, 0.45))
    sky_top = np.array(random_color(rng, 120, 250), dtype=np.float32)
    sky_bottom = np.array(random_color(rng, 150, 250), dtype=np.float32)
    img = _vertical_gradient(height, width, sky_top, sky_bottom)
    ground = np.array(random_color(rng, 50, 150), dtype=np.float32)
    img[horizon:] = _vertical_gradient(height - horizon, width, ground * 0.8, ground * 1.15)
    img = np.clip(img, 0, 255).astype(np.uint8)
    x = int(rng.integers(-40, 0))
    while x < width:
        bw = int(rng.integers(50, 160))
        top = int(rng.integers(0, max(1, horizon - 20)))
        _building(img, rng, x, x + bw, top, horizon + int(rng.integers(0, 8)))
        x += bw + int(rng.integers(0, 25))
    _road(img, rng, horizon)
    _clutter(img, rng, horizon)
    texture = smooth_noise(rng, height, width, int(rng.integers(8, 40)), float(rng.uniform(5, 25)))
    grain = rng.normal(0, rng.uniform(2, 8), size=(height, width)).astype(np.float32)
    img = np.clip(img.astype(np.float32) + (texture + grain)[:, :, None], 0, 255).astype(np.uint8)
    return img, horizon
