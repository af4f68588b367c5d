"""TensorRT 10 implicit INT8: a calibrator that reuses a cache or calibrates on the device.

TensorRT 10 (JetPack 6) still builds implicit-INT8 engines from an ``IInt8Calibrator``. With a
cache (``edgercnn quantize`` writes one from the same statistics as the Q/DQ ONNX) TensorRT reads
the scales and never asks for a batch; without one it pulls batches through ``get_batch`` and the
calibrator writes the cache it computes. Images go through the runtime's ``prepare_batch``, the
exact preprocessing the camera runs. TensorRT reuses a cache only with the calibrator class that
wrote it, so the class follows the cache header (entropy 2 or min-max).

``CalibrationFeed`` (images -> input arrays) and the cache I/O are plain Python, tested here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ...config import ModelConfig
from ...files import atomic_write_bytes
from .plan import EngineBuildError, calibration_batches, parse_calibration_cache_header

if TYPE_CHECKING:
    import tensorrt as trt

    from .cuda import CudaDevice, DeviceBuffer


class CalibrationFeed:
    """Calibration images as whole input batches, in the runtime's preprocessing."""

    def __init__(self, calib_dir: Path, config: ModelConfig, batch_size: int) -> None:
        from ...calibration import list_calibration_images

        paths = list_calibration_images(calib_dir)
        self.config = config
        self.batch_size = batch_size
        self.batches, self.left_out = calibration_batches(paths, batch_size)

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[np.ndarray]:
        from ...calibration import read_image_bgr
        from ...preprocess import prepare_batch

        for paths in self.batches:
            batch, _ = prepare_batch([read_image_bgr(p) for p in paths], self.config)
            yield np.ascontiguousarray(batch)


class CacheFile:
    """The calibration cache on disk: read if present (validated), written after calibration."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.written = False

    def read(self) -> bytes | None:
        if self.path is None or not self.path.is_file():
            return None
        data = self.path.read_bytes()
        parse_calibration_cache_header(data, self.path)
        return data

    def write(self, data: bytes) -> None:
        if self.path is not None:
            atomic_write_bytes(self.path, bytes(data))
            self.written = True


class _CalibratorCore:
    """What both calibrator classes do: hand TensorRT device pointers to batch after batch."""

    def __init__(
        self, feed: CalibrationFeed | None, cache: CacheFile, input_name: str, device: CudaDevice | None
    ) -> None:
        self.feed = feed
        self.cache = cache
        self.input_name = input_name
        self.device = device
        self._batches = iter(feed) if feed is not None else iter(())
        self._buffer: DeviceBuffer | None = None
        self.batches_served = 0

    def batch_size(self) -> int:
        # Ignored since TensorRT 10 (no implicit batch): the data's shape is the input's shape
        # in the calibration profile (its opt shape), which the feed's batches already have.
        return self.feed.batch_size if self.feed is not None else 1

    def next_pointers(self, names: list[str]) -> list[int] | None:
        if self.feed is None or self.device is None:
            raise EngineBuildError(
                "TensorRT asked for calibration batches, but there are no calibration images "
                "(the cache was missing or rejected): pass --calib-images"
            )
        if names != [self.input_name]:
            raise EngineBuildError(
                f"calibration: the network inputs are {names}, expected [{self.input_name!r}]"
            )
        batch = next(self._batches, None)
        if batch is None:
            return None
        self.device.push()  # TensorRT may call from its own thread: make the context current there
        try:
            if self._buffer is None:
                self._buffer = self.device.alloc(batch.nbytes)
            stream = self.device.stream()
            self.device.copy_to_device(self._buffer, batch, stream)
            stream.synchronize()
        finally:
            self.device.pop()
        self.batches_served += 1
        return [self._buffer.ptr]

    def release(self) -> None:
        if self._buffer is not None:
            self._buffer.free()
            self._buffer = None


def make_calibrator(
    kind: str,
    feed: CalibrationFeed | None,
    cache: CacheFile,
    input_name: str,
    device: CudaDevice | None,
) -> tuple[trt.IInt8Calibrator, _CalibratorCore]:
    """The TensorRT calibrator for ``kind`` ("entropy2" | "minmax") and its core (for cleanup)."""
    import tensorrt as trt

    core = _CalibratorCore(feed, cache, input_name, device)

    bases: dict[str, type[trt.IInt8Calibrator]] = {
        "entropy2": trt.IInt8EntropyCalibrator2,
        "minmax": trt.IInt8MinMaxCalibrator,
    }
    if kind not in bases:
        raise EngineBuildError(f"unknown calibrator {kind!r}")
    base = bases[kind]

    # One body for both algorithms: they differ only in the TensorRT base class (a variable base, so
    # mypy cannot check the overrides: the signatures below follow the stubs). get_batch returns None
    # for "no more batches" (TensorRT's documented protocol); read_calibration_cache's None means
    # "no cache". pybind11 needs the explicit base __init__ call.
    class Calibrator(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)

        def get_batch_size(self) -> int:
            return core.batch_size()

        def get_batch(self, names: list[str]) -> list[int] | None:
            return core.next_pointers(names)

        def read_calibration_cache(self) -> bytes | None:
            return core.cache.read()

        def write_calibration_cache(self, cache: memoryview | bytes) -> None:
            core.cache.write(bytes(cache))

    return Calibrator(), core
