"""Every decision of an engine build, as pure functions that run (and are tested) without TensorRT.

TensorRT cannot run on the build host, so what *can* be wrong here is kept out of the TensorRT
calls: which strategy a TensorRT version needs for a precision and an ONNX file, the
optimization-profile shapes, DLA settings, how calibration images are batched, the calibration
and timing cache files, the parser's error report, and the exact command that finishes the
engine on the target. ``builder.py`` only carries these decisions out.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from ...contract import EnginePrecision, Precision
from ...errors import EdgercnnError, UsageError
from ...validators import parse_batch_range

PRECISIONS: tuple[str, ...] = tuple(p.value for p in EnginePrecision)
ONNX_PRECISIONS: tuple[str, ...] = tuple(p.value for p in Precision)
DEFAULT_DYNAMIC_BATCH = (1, 1, 4)
_CACHE_HEADER = re.compile(rb"^TRT-(?P<version>\d+)-(?P<algorithm>[A-Za-z0-9]+)\s*$")
# calibration cache header algorithm -> calibrator TensorRT must be given to accept that cache
CALIBRATORS = {"EntropyCalibration2": "entropy2", "MinMaxCalibration": "minmax"}


class EngineBuildError(EdgercnnError):
    """A user-facing problem with an engine build (the CLI prints it and exits non-zero)."""


class TensorRTVersion(NamedTuple):
    major: int
    minor: int
    patch: int
    build: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}.{self.build}"


def parse_trt_version(text: str) -> TensorRTVersion:
    """``"10.3.0.30"`` -> TensorRTVersion(10, 3, 0, 30); missing parts are 0."""
    parts = re.findall(r"\d+", text)
    if not parts:
        raise EngineBuildError(f"cannot read a TensorRT version from {text!r}")
    numbers = [int(p) for p in parts[:4]] + [0] * (4 - min(len(parts), 4))
    return TensorRTVersion(*numbers)


@dataclass(frozen=True)
class BatchProfile:
    """Optimization profile of the batch axis for a dynamic-batch graph."""

    min: int
    opt: int
    max: int

    @classmethod
    def parse(cls, text: str) -> BatchProfile:
        """``"4"`` (fixed) or ``"1:4:8"`` (min:opt:max)."""
        try:
            return cls(*parse_batch_range(text, "--batch"))
        except UsageError as exc:
            raise EngineBuildError(str(exc)) from None

    def __str__(self) -> str:
        return f"{self.min}:{self.opt}:{self.max}"


@dataclass(frozen=True)
class EngineOptions:
    """What the user asks of an engine build (``export.py`` and ``edgercnn build`` fill it)."""

    precision: str = "fp16"
    calib_cache: Path | None = None  # TensorRT 10 implicit INT8: read if present, else written here
    calib_images: Path | None = None  # folder of images to calibrate from when there is no cache
    workspace_mb: int | None = None  # None: TensorRT's default (all device memory)
    opt_level: int = 3  # builder optimization level 0..5
    timing_cache: Path | None = None  # None: timing.cache beside the engine
    dla_core: int | None = None  # Jetson DLA core; layers DLA cannot run fall back to the GPU
    batch: BatchProfile | None = None  # dynamic-batch graphs only; None: DEFAULT_DYNAMIC_BATCH
    plugin_lib: Path | None = None  # libedgercnn_plugins.so; needed for the TensorRT-flavour ONNX
    device: int = 0

    def validate(self) -> None:
        if self.precision not in PRECISIONS:
            raise EngineBuildError(f"precision {self.precision!r}: choose one of {', '.join(PRECISIONS)}")
        if not 0 <= self.opt_level <= 5:
            raise EngineBuildError(f"builder optimization level {self.opt_level}: must be 0..5")
        if self.workspace_mb is not None and self.workspace_mb < 1:
            raise EngineBuildError(f"workspace {self.workspace_mb} MB: must be >= 1")
        if self.dla_core is not None and self.dla_core < 0:
            raise EngineBuildError(f"DLA core {self.dla_core}: must be >= 0")
        if self.plugin_lib is not None and not Path(self.plugin_lib).is_file():
            raise EngineBuildError(
                f"{self.plugin_lib}: plugin library not found (build it: plugins/README.md)"
            )
        if self.calib_images is not None and not Path(self.calib_images).exists():
            raise EngineBuildError(f"{self.calib_images}: calibration image folder not found")


@dataclass(frozen=True)
class BuildStrategy:
    """How TensorRT is driven for one build, and why (``notes`` are shown to the user)."""

    typing: str  # "weakly-typed" | "strongly-typed"
    flags: tuple[str, ...]  # BuilderFlag names
    precision: str
    int8_source: str | None = None  # "qdq" | "calibration-cache" | "calibrated"
    calibrator: str | None = None  # "entropy2" | "minmax" (TensorRT 10 implicit INT8 only)
    notes: tuple[str, ...] = field(default_factory=tuple)


def choose_strategy(
    version: TensorRTVersion,
    precision: str,
    onnx_precision: str,
    calib_cache_algorithm: str | None = None,
    has_calib_images: bool = False,
    dla_core: int | None = None,
) -> BuildStrategy:
    """TensorRT 10: weak typing with FP16/INT8 flags (calibrator for an FP32 ONNX, Q/DQ scales for a
    Q/DQ ONNX); TensorRT 11+: strong typing, the precision is the ONNX's own (the flags are gone)."""
    if precision not in PRECISIONS:
        raise EngineBuildError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if onnx_precision not in ONNX_PRECISIONS:
        raise EngineBuildError(f"ONNX precision {onnx_precision!r} is unknown (expected {ONNX_PRECISIONS})")
    if version.major < 10:
        raise EngineBuildError(
            f"TensorRT {version}: edgercnn needs TensorRT 10 or later (its plugins are IPluginV3; "
            "JetPack 6.1 and 6.2 ship TensorRT 10.3, JetPack 6.0 ships 8.6)"
        )
    dla_flags: tuple[str, ...] = ()
    if dla_core is not None:
        if version.major >= 11 and version[:3] < (11, 4, 1):
            raise EngineBuildError(
                f"--dla-core {dla_core}: TensorRT {version} has no DLA on Jetson (DLA is absent from 11.0 "
                "to 11.3 and 11.4.0; it returns in 11.4.1 on AGX Orin with JetPack 7.2.2 or later); build "
                "without --dla-core, or on TensorRT 10.x (JetPack 6) or 11.4.1+"
            )
        if precision == "fp32":
            raise EngineBuildError(
                "DLA runs FP16 or INT8 layers only: use --precision fp16 or int8 with --dla-core"
            )
        dla_flags = ("GPU_FALLBACK",)
    wanted_onnx = {"fp32": "fp32", "fp16": "fp16", "int8": "int8-qdq"}[precision]
    if version.major >= 11:
        if onnx_precision != wanted_onnx:
            raise EngineBuildError(
                f"TensorRT {version} builds strongly typed networks only: the precision comes from the ONNX, "
                f"which is {onnx_precision}; for --precision {precision} build from the "
                f"{_onnx_hint(precision)}"
            )
        notes = [f"TensorRT {version}: strongly typed network, precision {precision} taken from the ONNX"]
        if calib_cache_algorithm is not None or has_calib_images:
            notes.append("calibration cache / images ignored: TensorRT 11 has no calibrators (Q/DQ scales)")
        return BuildStrategy(
            "strongly-typed",
            dla_flags,
            precision,
            int8_source="qdq" if precision == "int8" else None,
            notes=tuple(notes),
        )
    # TensorRT 10.x
    if onnx_precision == "fp16":
        if precision != "fp16":
            raise EngineBuildError(
                f"the ONNX is FP16 (strongly typed precision); build it with --precision fp16, or use the "
                f"{_onnx_hint(precision)}"
            )
        return BuildStrategy(
            "strongly-typed",
            dla_flags,
            "fp16",
            notes=(f"TensorRT {version}: strongly typed network from the FP16 ONNX (float16 layers kept)",),
        )
    if onnx_precision == "int8-qdq":
        if precision != "int8":
            raise EngineBuildError(
                f"the ONNX has Q/DQ nodes (INT8); build it with --precision int8, or use the "
                f"{_onnx_hint(precision)}"
            )
        return BuildStrategy(
            "weakly-typed",
            ("INT8", "FP16", *dla_flags),
            "int8",
            int8_source="qdq",
            notes=(
                f"TensorRT {version}: explicit INT8 from the ONNX's Q/DQ scales (INT8 + FP16 flags: layers "
                "outside Q/DQ pairs may run in FP16)",
            ),
        )
    if precision == "fp32":
        note = f"TensorRT {version}: FP32 (TF32 where the GPU has it)"
        return BuildStrategy("weakly-typed", dla_flags, "fp32", notes=(note,))
    if precision == "fp16":
        return BuildStrategy(
            "weakly-typed",
            ("FP16", *dla_flags),
            "fp16",
            notes=(f"TensorRT {version}: FP16 builder flag (TensorRT picks FP16 or FP32 per layer)",),
        )
    # implicit INT8 from an FP32 ONNX
    if calib_cache_algorithm is not None:
        calibrator = calibrator_for(calib_cache_algorithm)
        source, how = "calibration-cache", f"scales read from the calibration cache ({calib_cache_algorithm})"
    elif has_calib_images:
        calibrator, source = "entropy2", "calibrated"
        how = "calibrating with IInt8EntropyCalibrator2 on the calibration images (the cache is written)"
    else:
        raise EngineBuildError(
            "INT8 from an FP32 ONNX on TensorRT 10 needs --calib-cache (from 'edgercnn quantize') or "
            "--calib-images; or build the Q/DQ ONNX (model.int8.trt.onnx) instead"
        )
    return BuildStrategy(
        "weakly-typed",
        ("INT8", "FP16", *dla_flags),
        "int8",
        int8_source=source,
        calibrator=calibrator,
        notes=(f"TensorRT {version}: implicit INT8 (INT8 + FP16 flags), {how}",),
    )


def _onnx_hint(precision: str) -> str:
    return {
        "fp32": "FP32 ONNX (model.onnx / model.trt.onnx)",
        "fp16": "FP16 ONNX written by export/quantize/fp16.py (model.fp16.onnx)",
        "int8": "Q/DQ ONNX written by 'edgercnn quantize' (model.int8.trt.onnx)",
    }[precision]


def calibrator_for(algorithm: str) -> str:
    """TensorRT reuses a cache only with the calibrator that wrote it: pick that one."""
    try:
        return CALIBRATORS[algorithm]
    except KeyError:
        raise EngineBuildError(
            f"calibration cache algorithm {algorithm!r} is not supported (expected one of "
            f"{', '.join(CALIBRATORS)})"
        ) from None


def parse_calibration_cache_header(data: bytes, path: Path | str = "<cache>") -> tuple[int, str]:
    """(TensorRT version number, algorithm) from a cache's first line ``TRT-<ver>-<algorithm>``."""
    first = data.split(b"\n", 1)[0]
    match = _CACHE_HEADER.match(first)
    if match is None:
        raise EngineBuildError(
            f"{path}: not a TensorRT calibration cache (first line {first[:60]!r}, expected "
            "'TRT-<version>-<algorithm>')"
        )
    return int(match["version"]), match["algorithm"].decode("ascii")


def read_calibration_cache(path: Path | None) -> bytes | None:
    """The cache bytes, or None when there is no cache yet (then calibration writes it)."""
    if path is None or not Path(path).exists():
        return None
    data = Path(path).read_bytes()
    parse_calibration_cache_header(data, path)
    return data


def read_timing_cache(path: Path) -> bytes:
    """Previous builds' tactic timings (empty: start a new cache)."""
    return Path(path).read_bytes() if Path(path).is_file() else b""


class ProfileShapes(NamedTuple):
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]


def profile_shapes(name: str, network_shape: tuple[int, ...], batch: BatchProfile | None) -> ProfileShapes:
    """Optimization-profile shapes of one input: the batch axis may be dynamic, nothing else."""
    dynamic = [i for i, d in enumerate(network_shape) if d < 0]
    if any(i != 0 for i in dynamic):
        raise EngineBuildError(
            f"input {name!r} has dynamic axes {dynamic} in shape {list(network_shape)}: edgercnn graphs "
            "have a fixed image size; re-export the ONNX for the camera's size"
        )
    if not dynamic:
        fixed = tuple(network_shape)
        if batch is not None and (batch.min, batch.opt, batch.max) != (fixed[0],) * 3:
            raise EngineBuildError(
                f"input {name!r} has a fixed batch of {fixed[0]}, --batch {batch} asks otherwise; "
                "re-export the ONNX with --batch dynamic (or a batch of that size)"
            )
        return ProfileShapes(fixed, fixed, fixed)
    b = batch or BatchProfile(*DEFAULT_DYNAMIC_BATCH)
    rest = tuple(network_shape[1:])
    return ProfileShapes((b.min, *rest), (b.opt, *rest), (b.max, *rest))


@dataclass(frozen=True)
class DlaSettings:
    core: int
    gpu_fallback: bool = True


def check_dla_shapes(dla_core: int | None, name: str, shapes: ProfileShapes) -> None:
    """DLA runs fixed shapes only: a dynamic-batch input needs a profile with min = opt = max."""
    if dla_core is not None and shapes.min != shapes.max:
        raise EngineBuildError(
            f"--dla-core {dla_core}: DLA runs fixed shapes only, input {name!r} has a batch range "
            f"{shapes.min[0]}..{shapes.max[0]}; pass --batch N"
        )


def dla_settings(dla_core: int | None, available_cores: int) -> DlaSettings | None:
    """DLA core to use (with GPU fallback for layers DLA cannot run), checked against the device."""
    if dla_core is None:
        return None
    if available_cores == 0:
        raise EngineBuildError(
            f"--dla-core {dla_core}: this device has no DLA (Jetson AGX Orin and Orin NX have DLA; "
            "Orin Nano does not)"
        )
    if dla_core >= available_cores:
        raise EngineBuildError(f"--dla-core {dla_core}: this device has DLA cores 0..{available_cores - 1}")
    return DlaSettings(dla_core)


def calibration_batches(paths: list[Path], batch_size: int) -> tuple[list[list[Path]], int]:
    """Whole batches of ``batch_size`` images (TensorRT needs every batch full); returns the
    batches and how many trailing images were left out."""
    if batch_size < 1:
        raise EngineBuildError(f"calibration batch size {batch_size}: must be >= 1")
    if len(paths) < batch_size:
        raise EngineBuildError(
            f"{len(paths)} calibration images are fewer than one batch of {batch_size}; add images"
        )
    whole = len(paths) // batch_size
    batches = [paths[i * batch_size : (i + 1) * batch_size] for i in range(whole)]
    return batches, len(paths) - whole * batch_size


@dataclass(frozen=True)
class ParserIssue:
    """One error of TensorRT's ONNX parser, with the node it is about."""

    code: str
    description: str
    node_index: int = -1
    node_name: str = ""
    node_operator: str = ""


def format_parser_errors(onnx_path: Path, issues: list[ParserIssue], plugin_loaded: bool) -> str:
    """One message naming each failing node; a missing plugin gets the fix spelled out."""
    lines = [f"{onnx_path}: TensorRT's ONNX parser failed ({len(issues)} error(s)):"]
    plugin_missing = False
    for issue in issues:
        where = issue.node_name or (f"#{issue.node_index}" if issue.node_index >= 0 else "<graph>")
        op = f" ({issue.node_operator})" if issue.node_operator else ""
        lines.append(f"  node {where}{op}: {issue.description} [{issue.code}]")
        if issue.node_operator.startswith("EdgeRCNN_"):
            plugin_missing = True
    if plugin_missing and not plugin_loaded:
        lines.append(
            "  the EdgeRCNN_* nodes are plugins: pass --plugin-lib path/to/libedgercnn_plugins.so "
            "(build it on this device, plugins/README.md), or build the portable model.onnx"
        )
    elif plugin_missing:
        lines.append("  the plugin library was loaded but lacks these plugins: rebuild it for this TensorRT")
    return "\n".join(lines)


def default_engine_path(onnx_path: Path, precision: str) -> Path:
    """``model.trt.onnx`` -> ``model.trt.fp16.engine`` beside it."""
    onnx_path = Path(onnx_path)
    stem = onnx_path.name[: -len(".onnx")] if onnx_path.name.endswith(".onnx") else onnx_path.stem
    return onnx_path.with_name(f"{stem}.{precision}.engine")


def default_timing_cache(engine_path: Path) -> Path:
    """One timing cache per folder: engines built there on one device share tactic timings."""
    return Path(engine_path).with_name("timing.cache")


def build_command(onnx_path: Path, engine_path: Path, options: EngineOptions) -> str:
    """The exact ``edgercnn build`` command that produces this engine (run it on the target)."""
    args = ["edgercnn", "build", str(onnx_path), "--engine", str(engine_path)]
    args += ["--precision", options.precision]
    # (flag, value, the value 'edgercnn build' assumes when the flag is left out)
    optional = (
        ("--calib-cache", options.calib_cache, None),
        ("--calib-images", options.calib_images, None),
        ("--workspace-mb", options.workspace_mb, None),
        ("--opt-level", options.opt_level, 3),
        ("--timing-cache", options.timing_cache, None),
        ("--dla-core", options.dla_core, None),
        ("--batch", options.batch, None),
        ("--plugin-lib", options.plugin_lib, None),
        ("--device", options.device, 0),
    )
    for flag, value, default in optional:
        if value != default:
            args += [flag, str(value)]
    return shlex.join(args)


def describe_profile(name: str, shapes: ProfileShapes) -> str:
    if shapes.min == shapes.max:
        return f"input {name}: fixed shape {list(shapes.min)}"
    return f"input {name}: min {list(shapes.min)}, opt {list(shapes.opt)}, max {list(shapes.max)}"
