"""The one image loader: file -> 8-bit BGR, with the checks OpenCV does not make.

OpenCV decodes a truncated JPEG or PNG into a picture with grey or black rows and says nothing,
and returns 16-bit, grey, alpha or float images as they are. Every command that reads an image
(run, eval, quantize, calibrate, parity, bench, the engine check) goes through :func:`load_image`
so all of them refuse the same files with the same line and convert the same ones with the same
note. Torch-free; the exporter uses it too.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from .errors import SourceError
from .validators import MAX_SIDE

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ImageConversionError(SourceError):
    """A decoded image whose pixel type or shape has no 8-bit BGR equivalent."""


def to_bgr8(image: np.ndarray) -> tuple[np.ndarray, str | None]:
    """Any decoded image -> 3-channel 8-bit BGR, plus a note when it had to be converted."""
    notes = []
    if image.dtype == np.uint16:
        image = (image.astype(np.uint32) * 255 + 32767) // 65535
        image = image.astype(np.uint8)
        notes.append("16-bit converted to 8-bit")
    elif image.dtype in (np.float32, np.float64):
        image = (np.clip(np.nan_to_num(image), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        notes.append("floating-point image scaled from [0, 1] to 8-bit")
    elif image.dtype != np.uint8:
        raise ImageConversionError(f"unsupported pixel type {image.dtype}")
    channels = 1 if image.ndim == 2 else image.shape[2]
    if image.ndim not in (2, 3) or channels not in (1, 2, 3, 4):
        raise ImageConversionError(f"unsupported image shape {image.shape}")
    if image.ndim == 3 and channels == 1:
        image = image[:, :, 0]
    if channels == 1:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        notes.append("grey image converted to BGR")
    elif channels == 2:
        image = cv2.cvtColor(np.ascontiguousarray(image[:, :, 0]), cv2.COLOR_GRAY2BGR)
        notes.append("grey+alpha image: alpha dropped, converted to BGR")
    elif channels == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        notes.append("alpha channel dropped")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageConversionError(f"empty image {image.shape}")
    if max(image.shape[:2]) > MAX_SIDE:
        raise ImageConversionError(
            f"{image.shape[1]}x{image.shape[0]} is larger than the {MAX_SIDE} pixels a side accepted"
        )
    return np.ascontiguousarray(image), ("; ".join(notes) or None)


def _is_truncated_jpeg(data: bytes) -> bool:
    # 0xFFD9 (end of image) cannot occur inside entropy-coded data, so its absence near the end
    # means the file was cut short (OpenCV would silently return a half-grey picture).
    return data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-4096:]


def _is_truncated_png(data: bytes) -> bool:
    # A PNG ends with its IEND chunk; OpenCV decodes a cut-off one with the missing rows black.
    return data[:8] == PNG_SIGNATURE and b"IEND" not in data[-64:]


def truncation(data: bytes) -> str | None:
    """Why an encoded image is cut short, or None: the check OpenCV's decoder does not make."""
    if _is_truncated_jpeg(data):
        return "truncated JPEG (no end-of-image marker)"
    if _is_truncated_png(data):
        return "truncated PNG (no IEND chunk)"
    return None


def decode_image_file(path: Path) -> tuple[np.ndarray, str | None]:
    """Read and decode an image file; raises ``ImageConversionError`` with a one-line reason."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageConversionError(f"cannot read file ({exc.strerror or exc})") from exc
    if not data:
        raise ImageConversionError("empty file (0 bytes)")
    return decode_image_bytes(data)


def decode_image_bytes(data: bytes) -> tuple[np.ndarray, str | None]:
    """Decode an encoded image (file contents, an HTTP body) with the same checks as a file."""
    if not data:
        raise ImageConversionError("empty file (0 bytes)")
    if why := truncation(data):
        raise ImageConversionError(why)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageConversionError("not a decodable image (corrupt, truncated or not an image file)")
    return to_bgr8(image)


def load_image(path: str | Path, notes: Callable[[str], None] | None = None) -> np.ndarray:
    """The one image loader of every command (run, eval, quantize, calibrate, parity, bench).

    Returns 8-bit BGR; a file that cannot be used raises ``ImageConversionError`` naming it, and
    a conversion (16-bit, grey, alpha) is passed to ``notes`` as ``<path>: <what>``.
    """
    try:
        image, note = decode_image_file(Path(path))
    except ImageConversionError as exc:
        raise ImageConversionError(f"{path}: {exc}") from None
    if note and notes is not None:
        notes(f"{path}: {note}")
    return image
