"""Random inputs of the custom-op tests: feature maps, RoIs of every kind, NMS candidates."""

from __future__ import annotations

import torch

IMAGE_HW = (64, 96)  # non-square; feature maps at strides 4..64
STRIDES = (4, 8, 16, 32, 64)


def random_features(batch: int, levels: int, channels: int = 3, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.randn(batch, channels, IMAGE_HW[0] // s, IMAGE_HW[1] // s, generator=gen)
        for s in STRIDES[:levels]
    ]


def random_rois(batch: int, count: int, seed: int = 0, negative_area: bool = True) -> torch.Tensor:
    """Boxes of every kind the deploy graph may feed the op: ordinary, tiny, zero-size, flipped
    (negative width and height, or negative area), partly or fully outside the image, and large
    enough for every level."""
    gen = torch.Generator().manual_seed(seed)
    h, w = IMAGE_HW
    x1 = torch.rand(batch, count, generator=gen) * (w + 40) - 20
    y1 = torch.rand(batch, count, generator=gen) * (h + 40) - 20
    size = torch.exp(torch.rand(batch, count, 2, generator=gen) * 7.0 - 1.0)  # 0.37 .. 400 px
    rois = torch.stack([x1, y1, x1 + size[..., 0], y1 + size[..., 1]], dim=-1)
    kind = torch.randint(0, 8, (batch, count), generator=gen)
    rois[kind == 0, 2] = rois[kind == 0, 0]  # zero width
    rois[kind == 1] = rois[kind == 1][:, [2, 3, 0, 1]]  # flipped
    rois[kind == 2] = rois[kind == 2] + torch.tensor([200.0, 150.0, 200.0, 150.0])  # beyond the image
    if negative_area:  # x flipped only; torchvision's roi_align fails on these with aligned + adaptive
        rois[kind == 3] = rois[kind == 3][:, [2, 1, 0, 3]]
    return rois


def random_boxes(batch: int, count: int, seed: int, ties: bool = False, classes: int = 3):
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(batch, count, 2, generator=gen) * 200
    wh = torch.rand(batch, count, 2, generator=gen) * 60
    boxes = torch.cat([xy, xy + wh], dim=-1)
    boxes[:, ::17, 2] = boxes[:, ::17, 0]  # some zero-width boxes
    scores = torch.rand(batch, count, generator=gen)
    if ties:
        scores = torch.floor(scores * 4) / 4 + 0.1  # a handful of distinct values
        boxes[:, 1::5] = boxes[:, 0:-1:5]  # identical boxes with identical scores
    idxs = torch.randint(0, classes, (batch, count), generator=gen)
    return boxes, scores, idxs
