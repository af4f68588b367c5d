"""Calibration statistics, measured once and reused by every INT8 artefact.

The CPU Q/DQ model, the TensorRT Q/DQ model, the mixed-precision search and the TensorRT 10
calibration cache must all describe the same ranges, or their accuracy figures would not be
comparable. So the ranges are computed here once (onnxruntime's calibrators: entropy, minmax,
percentile) and saved as onnxruntime's JSON range cache, which ``quantize_static`` accepts in
place of a data reader.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod
from onnxruntime.quantization.calibrate import (
    TensorsData,
    create_calibrator,
    load_tensors_data,
    save_tensors_data,
)

METHODS = {
    "entropy": CalibrationMethod.Entropy,
    "minmax": CalibrationMethod.MinMax,
    "percentile": CalibrationMethod.Percentile,
}
# TensorRT's entropy calibrator uses 2048 histogram bins folded to 128 quantized ones; with
# onnxruntime's default (128 and 128) the entropy search has a single candidate and degrades to minmax.
ENTROPY_BINS = 2048
PERCENTILE = 99.999
CHUNK = 4  # images per calibrator pass: histograms merge across passes, activations do not pile up


class QuantizeError(ValueError):
    """Bad quantization input: missing model or calibration set, unknown option, unusable graph."""


class FeedReader(CalibrationDataReader):
    """onnxruntime's data-reader protocol over a list of input feeds."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self._feeds = feeds
        self._iter: Iterator[dict[str, np.ndarray]] = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._iter, None)

    def __len__(self) -> int:
        return len(self._feeds)

    def rewind(self) -> None:
        self._iter = iter(self._feeds)


def calibration_method(name: str) -> CalibrationMethod:
    if name not in METHODS:
        raise QuantizeError(f"unknown calibration method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]


def compute_ranges(
    model_path: str | Path,
    feeds: Iterable[dict[str, np.ndarray]],
    method: str,
    op_types: Iterable[str],
    cache_path: str | Path,
    percentile: float = PERCENTILE,
) -> TensorsData:
    """Run the calibrator on ``feeds`` and save the per-tensor ranges as onnxruntime's JSON cache.

    Only the inputs and outputs of ``op_types`` nodes are observed: those are the tensors the
    Q/DQ variants quantize, and the ones a TensorRT calibration cache needs for the same layers.
    """
    options: dict[str, object] = {}
    if method == "entropy":
        options = {"num_bins": ENTROPY_BINS, "num_quantized_bins": 128}
    elif method == "percentile":
        options = {"percentile": percentile, "num_bins": ENTROPY_BINS}
    with tempfile.TemporaryDirectory(prefix="edgercnn-calib-") as tmp:
        calibrator = create_calibrator(
            Path(model_path),
            list(op_types),
            augmented_model_path=str(Path(tmp) / "augmented.onnx"),
            calibrate_method=calibration_method(method),
            extra_options=options,
        )
        chunk: list[dict[str, np.ndarray]] = []
        seen = 0
        for feed in feeds:
            chunk.append(feed)
            seen += 1
            if len(chunk) == CHUNK:
                calibrator.collect_data(FeedReader(chunk))
                chunk = []
        if chunk:
            calibrator.collect_data(FeedReader(chunk))
        if seen == 0:
            raise QuantizeError("the calibration set produced no input")
        ranges = calibrator.compute_data()
        del calibrator
    save_tensors_data(ranges, cache_path)
    return ranges


def load_ranges(cache_path: str | Path) -> TensorsData:
    return load_tensors_data(cache_path)


def tensor_amax(ranges: TensorsData) -> dict[str, float]:
    """max(|min|, |max|) per tensor: the symmetric range TensorRT's INT8 scale is made of."""
    amax: dict[str, float] = {}
    for name in ranges:
        low, high = ranges[name].range_value
        amax[name] = float(max(abs(float(np.asarray(low).min())), abs(float(np.asarray(high).max()))))
    return amax
