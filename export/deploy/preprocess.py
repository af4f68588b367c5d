"""The graph's first step: what the camera hands over becomes what the backbone expects.

With ``uint8`` input the host sends 1 byte per channel instead of 4 and skips the float
conversion; the graph does cast, BGR->RGB, scale and normalize. Padding is then forced to exactly
0 with a constant mask, so whatever colour the host pads with cannot leak into the features
(torchvision pads with 0 after normalization).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from edgercnn.export.deploy.geometry import InputGeometry
from edgercnn.runtime.contract import INPUT_DTYPES
from torch import nn


class InputAdapter(nn.Module):
    """``float32`` RGB normalized input passes through; ``uint8`` BGR is normalized in the graph."""

    def __init__(
        self, input_dtype: str, mean: Sequence[float], std: Sequence[float], geometry: InputGeometry
    ) -> None:
        super().__init__()
        if input_dtype not in INPUT_DTYPES:
            raise ValueError(f"input dtype must be one of {INPUT_DTYPES}, got {input_dtype!r}")
        self.input_dtype = input_dtype
        self.register_buffer(
            "mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("bgr_to_rgb", torch.tensor([2, 1, 0], dtype=torch.int64), persistent=False)
        needs_mask = (geometry.valid_height, geometry.valid_width) != (geometry.height, geometry.width)
        self.padded = needs_mask
        valid = torch.zeros((1, 1, geometry.height, geometry.width), dtype=torch.float32)
        valid[..., : geometry.valid_height, : geometry.valid_width] = 1.0
        self.register_buffer("valid_region", valid, persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.input_dtype == "float32":
            return images
        rgb = images.index_select(1, self.bgr_to_rgb).to(torch.float32) / 255.0
        # Same operation order as GeneralizedRCNNTransform.normalize.
        normalized = (rgb - self.mean) / self.std
        if self.padded:
            normalized = normalized * self.valid_region
        return normalized
