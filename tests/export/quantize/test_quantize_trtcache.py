"""TensorRT calibration cache text format: writer, reader, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from edgercnn.export.quantize.trtcache import (
    CalibrationCacheError,
    hex_to_scale,
    read_calibration_cache,
    scale_to_hex,
    write_calibration_cache,
)


def test_scale_is_written_as_big_endian_float32_bits():
    for scale in (1.0, 0.0123, 3.5e-5, 127.0):
        reference = np.array([scale], dtype=">f4").tobytes().hex()  # numpy's big-endian float32
        assert scale_to_hex(scale) == reference
        assert hex_to_scale(reference) == np.float32(scale)


def test_cache_round_trips_with_header_and_amax_over_127(tmp_path):
    amax = {"images": 2.64, "backbone.relu:0": 12.7, "zero": 0.0}
    path = write_calibration_cache(amax, tmp_path / "m.calib.cache", "entropy", 100300)
    lines = path.read_text().splitlines()
    assert lines[0] == "TRT-100300-EntropyCalibration2"
    version, algorithm, scales = read_calibration_cache(path)
    assert (version, algorithm) == (100300, "EntropyCalibration2")
    assert scales["images"] == np.float32(2.64 / 127)
    assert scales["backbone.relu:0"] == np.float32(0.1)
    assert scales["zero"] > 0  # TensorRT rejects a zero scale


@pytest.mark.parametrize(
    "text, what",
    [
        ("", "empty"),
        ("TRT-x-Entropy\n", "first line"),
        ("TRT-100300-EntropyCalibration2\nfoo 3f800000\n", ":2"),
    ],
)
def test_malformed_cache_is_refused_with_the_line(tmp_path, text, what):
    path = tmp_path / "bad.cache"
    path.write_text(text)
    with pytest.raises(CalibrationCacheError, match=what):
        read_calibration_cache(path)
