"""Cars and vans seen from the front/back (plate visible) or from the side, and licence plates."""

from __future__ import annotations

import cv2
import numpy as np

from .painter import Color, Painter, random_color, shade

PLATE_ASPECT = 0.3  # height / width of a plate
PLATE_STYLES: list[tuple[Color, Color]] = [
    ((235, 235, 235), (20, 20, 20)),  # white plate, black digits
    ((40, 200, 235), (20, 20, 20)),  # yellow plate
    ((150, 60, 20), (235, 235, 235)),  # blue plate, white digits
]


def plate_text(rng: np.random.Generator) -> str:
    """Four to six digits, sometimes with one letter, like a licence plate."""
    n = int(rng.integers(4, 7))
    chars = [str(int(d)) for d in rng.integers(0, 10, size=n)]
    if rng.random() < 0.4:
        chars[int(rng.integers(n))] = "ABCDEFHKMPTXY"[int(rng.integers(13))]
    return "".join(chars)


def draw_plate(painter: Painter, cx: float, cy: float, width: float, text: str, style: int) -> None:
    """A plate centred at (cx, cy) carrying ``text`` in one of ``PLATE_STYLES``."""
    height = width * PLATE_ASPECT
    bg, fg = PLATE_STYLES[style % len(PLATE_STYLES)]
    x0, y0, x1, y1 = cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2
    painter.rect(x0, y0, x1, y1, shade(bg, 0.55))
    border = max(1.0, width * 0.03)
    painter.detail_rect(x0 + border, y0 + border, x1 - border, y1 - border, bg)
    font = cv2.FONT_HERSHEY_SIMPLEX
    thickness = max(1, round(height * 0.1))
    (tw, th), _ = cv2.getTextSize(text, font, 1.0, thickness)
    scale = min((width - 4 * border) / tw, (height * 0.7) / th)
    (tw, th), _ = cv2.getTextSize(text, font, scale, thickness)
    org = (round(cx - tw / 2), round(cy + th / 2))
    cv2.putText(painter.image, text, org, font, scale, fg, thickness, lineType=cv2.LINE_AA)


def _wheel(painter: Painter, cx: float, cy: float, r: float) -> None:
    painter.circle((cx, cy), r, (25, 25, 28))
    painter.detail_circle((cx, cy), r * 0.5, (120, 120, 125))


def draw_vehicle_side(
    painter: Painter, x0: float, bottom: float, width: float, van: bool, color: Color, facing_right: bool
) -> None:
    """A car or van in profile with its bottom-left at (x0, bottom); no plate is visible."""
    w = width
    body_h = w * (0.28 if not van else 0.42)
    cabin_h = w * (0.17 if not van else 0.12)
    wheel_r = w * 0.085
    body_top = bottom - wheel_r * 0.8 - body_h
    painter.polygon(
        np.array(
            [
                [x0, bottom - wheel_r * 0.8],
                [x0, body_top + body_h * 0.25],
                [x0 + w * 0.05, body_top],
                [x0 + w * 0.95, body_top],
                [x0 + w, body_top + body_h * 0.3],
                [x0 + w, bottom - wheel_r * 0.8],
            ]
        ),
        color,
    )
    if van:
        cab = np.array([[x0 + 0.02 * w, body_top], [x0 + 0.98 * w, body_top]])
        roof = body_top - cabin_h
        cabin = np.array(
            [
                [cab[0, 0], body_top],
                [cab[0, 0] + 0.04 * w, roof],
                [cab[1, 0] - 0.1 * w, roof],
                [cab[1, 0], body_top],
            ]
        )
    else:
        roof = body_top - cabin_h
        cabin = np.array(
            [
                [x0 + 0.22 * w, body_top],
                [x0 + 0.32 * w, roof],
                [x0 + 0.68 * w, roof],
                [x0 + 0.8 * w, body_top],
            ]
        )
    if not facing_right:
        cabin[:, 0] = 2 * x0 + w - cabin[:, 0]
    painter.polygon(cabin, color)
    glass = shade((120, 100, 80), 1.0 + 0.3 * float(np.mean(color)) / 255)
    inset = cabin_h * 0.18
    win = cabin.copy()
    win[:, 1] = np.clip(win[:, 1], roof + inset, body_top - 1)
    win[0, 0] += inset
    win[-1, 0] -= inset
    painter.detail_polygon(win, glass)
    painter.detail_rect(
        x0 + 0.02 * w, body_top + body_h * 0.45, x0 + 0.98 * w, body_top + body_h * 0.5, shade(color, 0.7)
    )
    for fx in (0.2, 0.8):
        _wheel(painter, x0 + fx * w, bottom - wheel_r, wheel_r)


def draw_vehicle_front(
    painter: Painter,
    cx: float,
    bottom: float,
    width: float,
    van: bool,
    color: Color,
    glass: float,
    lights_on: bool,
) -> tuple[float, float, float]:
    """A car or van seen from the front or back; returns the plate's (cx, cy, width) to draw on it."""
    w = width
    body_h = w * (0.42 if not van else 0.55)
    cabin_h = w * (0.28 if not van else 0.32)
    x0, x1 = cx - w / 2, cx + w / 2
    wheel_h = w * 0.1
    body_bottom = bottom - wheel_h * 0.5
    body_top = body_bottom - body_h
    for wx in (x0 + 0.06 * w, x1 - 0.2 * w):
        painter.rect(wx, bottom - wheel_h, wx + 0.14 * w, bottom, (25, 25, 28))
    painter.polygon(
        np.array(
            [
                [x0, body_bottom],
                [x0, body_top + 0.15 * body_h],
                [x0 + 0.04 * w, body_top],
                [x1 - 0.04 * w, body_top],
                [x1, body_top + 0.15 * body_h],
                [x1, body_bottom],
            ]
        ),
        color,
    )
    top_in = 0.16 * w if not van else 0.06 * w
    roof = body_top - cabin_h
    painter.polygon(
        np.array(
            [[x0 + 0.06 * w, body_top], [x0 + top_in, roof], [x1 - top_in, roof], [x1 - 0.06 * w, body_top]]
        ),
        shade(color, 0.95),
    )
    inset = cabin_h * 0.15
    painter.detail_polygon(
        np.array(
            [
                [x0 + 0.06 * w + inset, body_top - 1],
                [x0 + top_in + inset, roof + inset],
                [x1 - top_in - inset, roof + inset],
                [x1 - 0.06 * w - inset, body_top - 1],
            ]
        ),
        shade((110, 95, 80), glass),
    )
    light = (200, 240, 250) if lights_on else (40, 40, 200)
    lh = body_h * 0.18
    ly = body_top + body_h * 0.2
    painter.detail_rect(x0 + 0.05 * w, ly, x0 + 0.22 * w, ly + lh, light)
    painter.detail_rect(x1 - 0.22 * w, ly, x1 - 0.05 * w, ly + lh, light)
    painter.detail_rect(x0 + 0.3 * w, ly + lh * 0.2, x1 - 0.3 * w, ly + lh * 0.9, shade(color, 0.5))
    plate_w = 0.3 * w
    plate_cy = body_top + body_h * 0.72
    return cx, plate_cy, plate_w


def vehicle_color(rng: np.random.Generator) -> Color:
    """Mostly greys, whites, blacks, some saturated colours, like a real car park."""
    if rng.random() < 0.5:
        v = int(rng.integers(25, 235))
        return (v, v, min(255, v + int(rng.integers(0, 12))))
    return random_color(rng, 30, 220)


__all__ = [
    "PLATE_ASPECT",
    "draw_plate",
    "draw_vehicle_front",
    "draw_vehicle_side",
    "plate_text",
    "random_color",
    "vehicle_color",
]
