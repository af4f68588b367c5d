"""``heatmaps_to_keypoints`` (torchvision) with static shapes.

torchvision upsamples each RoI's heatmap bicubically to the RoI's own size (``ceil(w) x ceil(h)``,
data dependent) and takes the arg-max. Here the upsampled map is evaluated only in fixed-size
windows around the ``candidates`` strongest local maxima of the low-resolution heatmap: each
evaluated pixel has exactly torchvision's value (same source index, clamped taps and cubic
coefficients, A = -0.75, ``align_corners=False``), and the windows are sized from the largest RoI
the graph can see (the valid image). A RoI no larger than a window is evaluated whole; for larger
ones the arg-max equals torchvision's whenever its maximum lies within ``WINDOW_RADIUS`` heatmap
cells of one of those local maxima (a bicubic interpolant peaks within a cell of a sample maximum).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CUBIC_A = -0.75
# Heatmap cells either side of a candidate whose output pixels are evaluated.
WINDOW_RADIUS = 1.5


def window_length(max_output: int, heatmap_size: int, radius: float | None = WINDOW_RADIUS) -> int:
    """Output pixels whose source coordinate lies within ``radius`` cells plus one pixel of a centre;
    ``radius=None`` covers the largest RoI whole (exhaustive, exact for any heatmap)."""
    if radius is None:
        return max_output
    # ``radius`` cells plus one output pixel (``scale`` cells) either side, plus the end points.
    return min(int(2 * radius * max_output // heatmap_size) + 4, max_output)


def _cubic_weights(t: torch.Tensor) -> list[torch.Tensor]:
    """``get_cubic_upsample_coefficients`` of PyTorch's bicubic kernel."""
    a = CUBIC_A

    def near(x: torch.Tensor) -> torch.Tensor:  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x: torch.Tensor) -> torch.Tensor:  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def _axis_window(
    center: torch.Tensor, out_size: torch.Tensor, in_size: int, length: int, radius: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Output positions near ``center`` along one axis, their validity, and interpolation weights.

    ``center`` is ``[R, P, T]`` (a heatmap index), ``out_size`` ``[R]`` (the RoI's ceil size).
    The window starts where the source coordinate reaches ``center - radius``, moved back
    so it stays inside the RoI; a RoI no longer than the window is covered whole. Returns
    positions ``[R, P, T, L]``, validity ``[R, P, T, L]`` and weights ``[R, P, T, L, in_size]``.
    """
    out = out_size.reshape(-1, 1, 1, 1)
    scale = in_size / out  # float32, as area_pixel_compute_scale
    c = center.to(torch.float32).unsqueeze(-1)
    # One more output pixel on each side: when the map is shrunk (scale > 1 cell per pixel) the
    # pixel nearest the peak can sit almost a pixel away, and its neighbour may be the maximum.
    start = torch.ceil((c - (radius + scale) + 0.5) / scale - 0.5)
    start = torch.minimum(start, (out - length).clamp(min=0.0)).clamp(min=0.0)
    steps = torch.arange(length, dtype=torch.float32, device=center.device)
    position = start + steps
    real = (position + 0.5) * scale - 0.5
    index = torch.floor(real).clamp(max=float(in_size - 1))
    lam = (real - index).clamp(0.0, 1.0)
    valid = position < out
    sources = torch.arange(in_size, dtype=torch.float32, device=center.device)
    weights = torch.zeros((*position.shape, in_size), dtype=torch.float32, device=center.device)
    for tap, w in enumerate(_cubic_weights(lam)):
        source = (index + (tap - 1)).clamp(0.0, float(in_size - 1))  # PyTorch clamps taps at borders
        weights = weights + w.unsqueeze(-1) * (source.unsqueeze(-1) == sources).to(torch.float32)
    return position, valid, weights


def heatmaps_to_keypoints_static(
    maps: torch.Tensor,
    rois: torch.Tensor,
    max_height: int,
    max_width: int,
    candidates: int = 2,
    radius: float | None = WINDOW_RADIUS,
) -> torch.Tensor:
    """``[R, P, S, S]`` heatmap logits and ``[R, 4]`` boxes -> ``[R, P, 3]`` ``(x, y, score)``.

    ``max_height``/``max_width`` bound the RoI size (the graph's valid image); boxes are the
    clipped detections, so they never exceed it. ``radius=None`` searches every pixel of every
    RoI (exact whatever the heatmaps look like, affordable for small inputs only).
    """
    if radius is None:
        candidates = 1
    r, p, h, w = maps.shape
    x1, y1, x2, y2 = rois.unbind(-1)
    widths = (x2 - x1).clamp(min=1)
    heights = (y2 - y1).clamp(min=1)
    widths_ceil = widths.ceil()
    heights_ceil = heights.ceil()

    peaks = maps == F.max_pool2d(maps, 3, stride=1, padding=1)
    peak_values = torch.where(peaks, maps, float("-inf")).reshape(r, p, h * w)
    _, cells = peak_values.topk(min(candidates, h * w), dim=-1)
    cy = torch.div(cells, w, rounding_mode="floor")
    cx = cells - cy * w

    reach = float(max(h, w)) if radius is None else radius
    pos_y, valid_y, weights_y = _axis_window(cy, heights_ceil, h, window_length(max_height, h, radius), reach)
    pos_x, valid_x, weights_x = _axis_window(cx, widths_ceil, w, window_length(max_width, w, radius), reach)
    # Along x first, then y: the order PyTorch's separable kernel sums in.
    along_x = torch.matmul(maps.unsqueeze(2), weights_x.transpose(-1, -2))  # [R, P, T, S, Lx]
    values = torch.matmul(weights_y, along_x)  # [R, P, T, Ly, Lx]
    valid = valid_y.unsqueeze(-1) & valid_x.unsqueeze(-2)
    values = torch.where(valid, values, float("-inf"))

    ly, lx = values.shape[-2:]
    grid_y = pos_y.unsqueeze(-1).expand(*pos_y.shape, lx).reshape(r, p, -1)
    grid_x = pos_x.unsqueeze(-2).expand(*pos_x.shape[:-1], ly, lx).reshape(r, p, -1)
    flat_values = values.reshape(r, p, -1)
    best = flat_values.max(dim=-1, keepdim=True).values
    # torchvision's argmax takes the first maximum in row-major order of the RoI's map.
    raster = grid_y * widths_ceil.reshape(-1, 1, 1) + grid_x
    raster = torch.where(flat_values == best, raster, float("inf"))
    choice = raster.argmin(dim=-1, keepdim=True)
    y_int = torch.gather(grid_y, 2, choice).squeeze(-1)
    x_int = torch.gather(grid_x, 2, choice).squeeze(-1)

    x = (x_int + 0.5) * (widths / widths_ceil).unsqueeze(-1) + x1.unsqueeze(-1)
    y = (y_int + 0.5) * (heights / heights_ceil).unsqueeze(-1) + y1.unsqueeze(-1)
    return torch.stack((x, y, best.squeeze(-1)), dim=-1)
