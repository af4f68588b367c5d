"""TensorRT 10 calibration cache (implicit INT8) written from the shared calibration ranges.

TensorRT 10 still builds implicit-INT8 engines from a calibrator whose ``readCalibrationCache``
returns this text: a header ``TRT-<version>-<algorithm>`` and one line per tensor,
``<tensor name>: <scale>``, the scale (``amax / 127``) written as the 8 hex digits of its
big-endian float32 bits. With a cache present TensorRT skips calibration and uses the scales
as they are, so the engine gets exactly the ranges the Q/DQ variants were measured with.

onnxruntime's ``write_calibration_table`` writes its own TensorRT-EP table (max values, JSON and
flatbuffers), not this format, hence this small writer.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import onnx
from edgercnn.runtime.errors import EdgercnnError

# TensorRT 10.3 (JetPack 6): getInferLibVersion() = major * 10000 + minor * 100 + patch.
DEFAULT_TRT_VERSION = 100300
ALGORITHMS = {
    "entropy": "EntropyCalibration2",
    "minmax": "MinMaxCalibration",
    "percentile": "EntropyCalibration2",
}
_LINE = re.compile(r"^(?P<name>.+): (?P<hex>[0-9a-f]{8})$")
_HEADER = re.compile(r"^TRT-(?P<version>\d+)-(?P<algorithm>[A-Za-z0-9]+)$")


class CalibrationCacheError(EdgercnnError):
    """A calibration cache that TensorRT would not read."""


def scale_to_hex(scale: float) -> str:
    return struct.pack(">f", scale).hex()


def hex_to_scale(text: str) -> float:
    return float(struct.unpack(">f", bytes.fromhex(text))[0])


def write_calibration_cache(
    amax: dict[str, float],
    path: str | Path,
    method: str = "entropy",
    trt_version: int = DEFAULT_TRT_VERSION,
) -> Path:
    """Write ``amax`` (per tensor name) as a TensorRT calibration cache; returns the path.

    A tensor whose range is zero (a constant-zero activation) gets the smallest positive
    scale rather than 0, which TensorRT rejects.
    """
    algorithm = ALGORITHMS.get(method, "EntropyCalibration2")
    lines = [f"TRT-{trt_version}-{algorithm}"]
    for name in sorted(amax):
        if "\n" in name or ": " in name:
            raise CalibrationCacheError(f"tensor name {name!r} cannot be written in a calibration cache")
        scale = max(float(amax[name]) / 127.0, 1e-12)
        lines.append(f"{name}: {scale_to_hex(scale)}")
    out = Path(path)
    out.write_text("\n".join(lines) + "\n")
    return out


def read_calibration_cache(path: str | Path) -> tuple[int, str, dict[str, float]]:
    """Parse a cache as TensorRT does: (version, algorithm, scale per tensor)."""
    text = Path(path).read_text()
    lines = text.splitlines()
    if not lines:
        raise CalibrationCacheError(f"{path}: empty calibration cache")
    header = _HEADER.match(lines[0])
    if header is None:
        raise CalibrationCacheError(f"{path}: first line {lines[0]!r} is not 'TRT-<version>-<algorithm>'")
    scales: dict[str, float] = {}
    for number, line in enumerate(lines[1:], start=2):
        match = _LINE.match(line)
        if match is None:
            raise CalibrationCacheError(f"{path}:{number}: {line!r} is not '<tensor>: <8 hex digits>'")
        scales[match["name"]] = hex_to_scale(match["hex"])
    return int(header["version"]), header["algorithm"], scales


def graph_tensor_names(model: onnx.ModelProto) -> set[str]:
    """Every activation name TensorRT's ONNX parser can give a dynamic range to."""
    names = {value.name for value in model.graph.input}
    for node in model.graph.node:
        names.update(name for name in node.output if name)
    return names
