"""The one image loader: what it refuses, what it converts and says so, and that it names the file."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from edgercnn.runtime.images import ImageConversionError, decode_image_bytes, load_image
from edgercnn.runtime.validators import MAX_SIDE

from tests.builders.bad_inputs import truncated_image


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_a_truncated_file_is_refused_naming_it(tmp_path: Path, suffix: str) -> None:
    path = truncated_image(tmp_path / f"cut{suffix}")
    if suffix == ".jpg":  # what OpenCV alone does with it: a half-grey picture, silently
        assert cv2.imread(str(path)) is not None
    with pytest.raises(ImageConversionError, match=rf"^{path}: truncated (JPEG|PNG)"):
        load_image(path)


def test_a_16_bit_grey_png_is_converted_with_a_note(tmp_path: Path) -> None:
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), np.full((8, 8), 65535, np.uint16))
    notes: list[str] = []
    image = load_image(path, notes.append)
    assert image.dtype == np.uint8 and image.shape == (8, 8, 3) and int(image.max()) == 255
    assert notes == [f"{path}: 16-bit converted to 8-bit; grey image converted to BGR"]


def test_an_image_beyond_the_size_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    cv2.imwrite(str(path), np.zeros((1, MAX_SIDE + 1), np.uint8))
    with pytest.raises(ImageConversionError, match=rf"{MAX_SIDE + 1}x1 is larger than"):
        load_image(path)


def test_empty_and_undecodable_bytes_are_refused() -> None:
    with pytest.raises(ImageConversionError, match="empty"):
        decode_image_bytes(b"")
    with pytest.raises(ImageConversionError, match="not a decodable image"):
        decode_image_bytes(b"GIF89a not really")
