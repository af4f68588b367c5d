"""Images -> the graph's fixed input, exactly as torchvision's ``GeneralizedRCNNTransform``.

torchvision normalizes a float RGB image, resizes it with ``interpolate(scale_factor=s,
mode="bilinear", align_corners=False, recompute_scale_factor=True)`` (output size
``floor(h*s), floor(w*s)``, sampling at ``(dst + 0.5) * in/out - 0.5``) and zero-pads bottom/right.
Bilinear weights sum to one, so resizing before normalizing gives the same numbers; OpenCV's
float32 ``INTER_LINEAR`` samples at the same positions. This module is also what INT8 calibration
feeds, so the calibration data sees exactly what inference sees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .config import ModelConfig
from .errors import SourceError


@dataclass(frozen=True)
class ImageTransform:
    """How one original image maps into the graph input, to map detections back."""

    original_height: int
    original_width: int
    resized_height: int
    resized_width: int
    scale: float

    def ratios(self) -> tuple[np.float32, np.float32]:
        """(ratio_h, ratio_w) original/resized in float32, as torchvision's ``resize_boxes``."""
        ratio_h = np.float32(self.original_height) / np.float32(self.resized_height)
        ratio_w = np.float32(self.original_width) / np.float32(self.resized_width)
        return np.float32(ratio_h), np.float32(ratio_w)


def resize_scale(height: int, width: int, config: ModelConfig) -> float:
    """torchvision's scale rule, capped so the resized image fits the graph's valid region."""
    spec = config.input
    scale = min(spec.min_size / min(height, width), spec.max_size / max(height, width))
    if math.floor(height * scale) > spec.valid_height or math.floor(width * scale) > spec.valid_width:
        scale = min(scale, spec.valid_height / height, spec.valid_width / width)
    return scale


def compute_transform(height: int, width: int, config: ModelConfig) -> ImageTransform:
    scale = resize_scale(height, width, config)
    resized_h = max(1, min(math.floor(height * scale), config.input.valid_height))
    resized_w = max(1, min(math.floor(width * scale), config.input.valid_width))
    return ImageTransform(height, width, resized_h, resized_w, scale)


def check_image(image: np.ndarray, name: str = "image") -> None:
    """Reject what the models cannot take, with one line naming the image."""
    if not isinstance(image, np.ndarray):
        raise SourceError(f"{name}: expected a numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise SourceError(
            f"{name}: expected an 8-bit BGR image (H, W, 3) uint8, got shape {image.shape} {image.dtype}"
            " (runtime.sources.to_bgr8 converts grey, alpha and 16-bit images)"
        )
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise SourceError(f"{name}: empty image {image.shape}")


def _resize(image: np.ndarray, transform: ImageTransform) -> np.ndarray:
    size = (transform.resized_width, transform.resized_height)
    if size == (image.shape[1], image.shape[0]):
        return image
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


def _fill_float(
    dst: np.ndarray, image_bgr: np.ndarray, transform: ImageTransform, config: ModelConfig
) -> None:
    """dst: (3, H, W) float32, already zero.

    Resizing is done on float pixels (as torchvision does) but before the /255, the colour swap
    and the normalization, which then touch only the smaller resized image: bilinear weights sum
    to one, so the order changes results by float rounding only (~1e-6 after normalization).
    """
    spec = config.input
    resized = _resize(image_bgr.astype(np.float32), transform)
    h, w = transform.resized_height, transform.resized_width
    for c in range(3):  # RGB plane c comes from BGR channel 2 - c
        plane = dst[c, :h, :w]
        np.divide(resized[:, :, 2 - c], np.float32(255.0), out=plane)
        plane -= np.float32(spec.mean[c])  # (x - mean) / std in float32, torchvision's order
        plane /= np.float32(spec.std[c])


def pad_colour_bgr(config: ModelConfig) -> tuple[int, int, int]:
    """uint8 graphs pad with the mean colour, which normalizes to 0 inside the graph."""
    mean = config.input.mean
    return round(255 * mean[2]), round(255 * mean[1]), round(255 * mean[0])


def _fill_uint8(
    dst: np.ndarray, image_bgr: np.ndarray, transform: ImageTransform, config: ModelConfig
) -> None:
    """dst: (3, H, W) uint8, already filled with the mean colour."""
    resized = _resize(image_bgr, transform)
    h, w = transform.resized_height, transform.resized_width
    dst[:, :h, :w] = resized.transpose(2, 0, 1)


def prepare_batch(
    images_bgr: list[np.ndarray], config: ModelConfig, batch_size: int | None = None
) -> tuple[np.ndarray, list[ImageTransform]]:
    """BGR uint8 images -> (N, 3, H, W) graph input and the per-image transforms.

    ``batch_size`` pads the batch with blank images to a fixed-batch graph's N.
    """
    if not images_bgr:
        raise ValueError("prepare_batch needs at least one image")
    spec = config.input
    n = max(len(images_bgr), batch_size or 0)
    if spec.dtype == "uint8":
        batch = np.empty((n, 3, spec.height, spec.width), dtype=np.uint8)
        batch[:] = np.array(pad_colour_bgr(config), dtype=np.uint8)[None, :, None, None]
    else:
        batch = np.zeros((n, 3, spec.height, spec.width), dtype=np.float32)
    transforms = []
    for i, image in enumerate(images_bgr):
        check_image(image, f"image {i}")
        transform = compute_transform(image.shape[0], image.shape[1], config)
        if spec.dtype == "uint8":
            _fill_uint8(batch[i], image, transform, config)
        else:
            _fill_float(batch[i], image, transform, config)
        transforms.append(transform)
    return batch, transforms
