"""The JSON sidecar beside every TensorRT engine, and the check that refuses a foreign engine.

An engine is a compiled blob tied to one TensorRT version, one GPU architecture and the exact
plugin library it was built with; loading it elsewhere fails deep inside TensorRT or, worse,
runs wrong kernels. The sidecar (``<engine>.json``) records what the engine was built against,
and ``check_sidecar`` compares that with the device before anything is deserialized, with a
message that says what differs and which command rebuilds the engine here.

Layout: the model's ``edgercnn.config`` dict at the top level (so ``ModelConfig`` reads a
sidecar exactly like ONNX metadata), plus one ``"tensorrt"`` object with the engine facts.
Shared by the exporter (writes it) and the runtime (checks it); torch-free, numpy-free.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ...errors import BackendError, ModelFormatError
from ...files import atomic_write_bytes

SIDECAR_VERSION = 1
SIDECAR_KEY = "tensorrt"


class EngineCompatibilityError(BackendError):
    """The engine was built for another TensorRT, GPU architecture or plugin library."""


@dataclass(frozen=True)
class GpuInfo:
    """The identity of a CUDA device that matters for engine compatibility."""

    name: str
    compute_capability: str  # "8.7"

    @property
    def cc_tuple(self) -> tuple[int, int]:
        major, _, minor = self.compute_capability.partition(".")
        return int(major), int(minor or 0)


@dataclass(frozen=True)
class TensorInfo:
    """One engine I/O tensor; ``profile`` is (min, opt, max) shapes for inputs of dynamic engines."""

    name: str
    dtype: str
    shape: list[int]
    profile: dict[str, list[int]] | None = None


@dataclass(frozen=True)
class EngineInfo:
    """What an engine was built from and for (the ``"tensorrt"`` object of the sidecar)."""

    sidecar_version: int
    engine_file: str
    engine_sha256: str
    tensorrt_version: str
    gpu: GpuInfo
    precision: str  # fp32 | fp16 | int8 (what the engine computes in)
    strategy: str  # "weakly-typed" (builder flags) | "strongly-typed" (precision from the ONNX)
    onnx_file: str
    onnx_sha256: str
    plugin_library: str | None
    plugin_sha256: str | None
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    build_command: str
    dla_core: int | None = None
    int8_source: str | None = None  # "calibration-cache" | "calibrated" | "qdq" | None
    builder: dict[str, Any] = field(default_factory=dict)  # opt level, workspace, timing cache
    edgercnn_version: str = ""
    built_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: Path) -> EngineInfo:
        try:
            version = int(data["sidecar_version"])
            if version != SIDECAR_VERSION:
                raise ModelFormatError(
                    f"{where}: sidecar version {version} is not the {SIDECAR_VERSION} this runtime reads; "
                    f"rebuild the engine with: {data.get('build_command', 'edgercnn build')}"
                )
            fields = dict(data)
            fields["gpu"] = GpuInfo(**data["gpu"])
            fields["inputs"] = [TensorInfo(**t) for t in data["inputs"]]
            fields["outputs"] = [TensorInfo(**t) for t in data["outputs"]]
            return cls(**fields)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFormatError(
                f"{where}: the '{SIDECAR_KEY}' part of the engine sidecar is malformed ({exc!r}); "
                "rebuild the engine with 'edgercnn build'"
            ) from None


@dataclass(frozen=True)
class Sidecar:
    """A parsed sidecar: the model config dict and the engine facts."""

    model: dict[str, Any]
    engine: EngineInfo


@dataclass(frozen=True)
class DeviceEnvironment:
    """What the device offers at load time (``plugin_sha256`` of the library the runtime loaded)."""

    tensorrt_version: str
    gpu: GpuInfo | None
    plugin_sha256: str | None


def sidecar_path(engine_path: str | Path) -> Path:
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")


def write_sidecar(engine_path: str | Path, model_config: dict[str, Any], info: EngineInfo) -> Path:
    """Write ``<engine>.json`` atomically (a crash never leaves half a sidecar beside an engine)."""
    if SIDECAR_KEY in model_config:
        raise ValueError(f"the model config already has a {SIDECAR_KEY!r} key")
    data = dict(model_config)
    data[SIDECAR_KEY] = info.to_dict()
    target = sidecar_path(engine_path)
    atomic_write_bytes(target, (json.dumps(data, indent=2, sort_keys=False) + "\n").encode("utf-8"))
    return target


def read_sidecar(engine_path: str | Path) -> Sidecar:
    """Parse ``<engine>.json``; a missing or malformed sidecar is a ``ModelFormatError``."""
    engine_path = Path(engine_path)
    path = sidecar_path(engine_path)
    if not path.exists():
        raise ModelFormatError(
            f"{engine_path}: engine has no sidecar {path.name}; engines are only loaded with the sidecar "
            "written by 'edgercnn build' (rebuild it on this device)"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"{path}: cannot read the engine sidecar ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get(SIDECAR_KEY), dict):
        raise ModelFormatError(
            f"{path}: has no '{SIDECAR_KEY}' object; it is not an engine sidecar written by 'edgercnn build'"
        )
    engine = EngineInfo.from_dict(data.pop(SIDECAR_KEY), path)
    return Sidecar(model=data, engine=engine)


def _major_minor(version: str) -> tuple[int, int]:
    parts = [int(p) for p in version.split(".")[:2] if p.isdigit()]
    padded = [*parts, 0, 0]
    return padded[0], padded[1]


def check_sidecar(
    engine_path: str | Path,
    sidecar: Sidecar,
    device: DeviceEnvironment,
    engine_sha256: str | None = None,
) -> list[str]:
    """Refuse an engine this device cannot run; return warnings for differences that may still work.

    Refused: another TensorRT major.minor, another GPU compute capability, a plugin library with
    another SHA-256 (or none loaded where the engine needs one), an engine file the sidecar does
    not describe. Warned: another TensorRT patch/build, another GPU name with the same
    compute capability (TensorRT itself then warns that tactics were tuned elsewhere).
    """
    info = sidecar.engine
    engine_path = Path(engine_path)
    problems: list[str] = []
    warnings: list[str] = []
    if engine_sha256 is not None and engine_sha256 != info.engine_sha256:
        problems.append(
            f"the sidecar describes another engine file (SHA-256 {info.engine_sha256[:12]}..., "
            f"this file {engine_sha256[:12]}...)"
        )
    if _major_minor(device.tensorrt_version) != _major_minor(info.tensorrt_version):
        problems.append(
            f"built with TensorRT {info.tensorrt_version}, this device has {device.tensorrt_version}"
        )
    elif device.tensorrt_version != info.tensorrt_version:
        warnings.append(
            f"{engine_path}: built with TensorRT {info.tensorrt_version}, running on "
            f"{device.tensorrt_version} (same major.minor; TensorRT refuses it if the plan format changed)"
        )
    if device.gpu is None:
        problems.append("no CUDA GPU is visible on this machine")
    elif device.gpu.cc_tuple != info.gpu.cc_tuple:
        problems.append(
            f"built for {info.gpu.name} (compute capability {info.gpu.compute_capability}), this GPU is "
            f"{device.gpu.name} (compute capability {device.gpu.compute_capability})"
        )
    elif device.gpu.name != info.gpu.name:
        warnings.append(
            f"{engine_path}: built on {info.gpu.name}, running on {device.gpu.name} (same compute capability "
            f"{info.gpu.compute_capability}; tactics were timed on the other GPU, rebuild for best speed)"
        )
    if info.plugin_sha256 is not None:
        if device.plugin_sha256 is None:
            problems.append(
                f"the engine contains edgercnn plugin layers and needs the plugin library it was built with "
                f"({info.plugin_library}); none was loaded (pass --plugin-lib or set EDGERCNN_PLUGIN_LIB)"
            )
        elif device.plugin_sha256 != info.plugin_sha256:
            problems.append(
                f"the plugin library differs from the one the engine was built with "
                f"(SHA-256 {device.plugin_sha256[:12]}... vs {info.plugin_sha256[:12]}... of "
                f"{info.plugin_library})"
            )
    if problems:
        raise EngineCompatibilityError(
            f"{engine_path}: cannot run this engine here: "
            + "; ".join(problems)
            + f". Rebuild it on this device: {info.build_command}"
        )
    return warnings
