"""Fixed input geometry of a deploy graph: torchvision's resize rule applied once, at export time.

The graph is exported for one *source* size (a camera's resolution). ``GeneralizedRCNNTransform``
would resize every frame of that size to the same *valid* size and pad it to a multiple of
``size_divisible``; doing that computation here, with torchvision's own function, is what lets
anchors, clipping bounds and RoI scales become constants in the graph.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from edgercnn.export.deploy.errors import UnsupportedInputSizeError
from torchvision.models.detection.transform import GeneralizedRCNNTransform, _resize_image_and_masks

# Bounds that keep the graph sensible: below 32 px the coarsest FPN level vanishes; above 8192 px
# a single frame needs gigabytes of activations.
MIN_SOURCE_SIDE = 32
MAX_SOURCE_SIDE = 8192


@dataclass(frozen=True)
class InputGeometry:
    """Sizes in pixels (height first) of one exported graph; see docs/model-format.md."""

    source_height: int
    source_width: int
    valid_height: int
    valid_width: int
    height: int
    width: int
    min_size: int
    max_size: int
    size_divisible: int

    def as_metadata(self) -> dict[str, Any]:
        return asdict(self)


def _check_source(height: int, width: int) -> None:
    for name, side in (("height", height), ("width", width)):
        if not MIN_SOURCE_SIDE <= side <= MAX_SOURCE_SIDE:
            raise UnsupportedInputSizeError(
                f"source {name} {side} px is outside the supported range "
                f"{MIN_SOURCE_SIDE}..{MAX_SOURCE_SIDE} px (the graph is exported for one camera resolution; "
                "below 32 px the coarsest feature level has no cells)"
            )


def resized_size(transform: GeneralizedRCNNTransform, height: int, width: int) -> tuple[int, int]:
    """The size torchvision's eval-mode transform gives a ``height x width`` image.

    Runs torchvision's own resize on a one-channel dummy image so the rounding is torchvision's
    by construction (``recompute_scale_factor=True`` floors the scaled size).
    """
    dummy = torch.zeros((1, height, width), dtype=torch.float32)
    resized, _ = _resize_image_and_masks(
        dummy, int(transform.min_size[-1]), int(transform.max_size), None, transform.fixed_size
    )
    return int(resized.shape[-2]), int(resized.shape[-1])


def input_geometry(
    transform: GeneralizedRCNNTransform, source_height: int, source_width: int
) -> InputGeometry:
    """Valid and padded graph input size for frames of ``source_height x source_width``."""
    _check_source(source_height, source_width)
    valid_h, valid_w = resized_size(transform, source_height, source_width)
    if min(valid_h, valid_w) < 1:
        raise UnsupportedInputSizeError(
            f"source size {source_width}x{source_height} resizes to {valid_w}x{valid_h} px under the model's "
            f"min_size={transform.min_size[-1]}, max_size={transform.max_size}"
            ": the aspect ratio is too extreme"
        )
    stride = int(transform.size_divisible)
    return InputGeometry(
        source_height=source_height,
        source_width=source_width,
        valid_height=valid_h,
        valid_width=valid_w,
        height=int(math.ceil(valid_h / stride) * stride),
        width=int(math.ceil(valid_w / stride) * stride),
        min_size=int(transform.min_size[-1]),
        max_size=int(transform.max_size),
        size_divisible=stride,
    )
