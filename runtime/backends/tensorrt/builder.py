"""ONNX -> TensorRT engine + sidecar, on the device that will run it.

``build_engine`` detects TensorRT and the GPU, decides the strategy with the pure functions of
``runtime/backends/tensorrt/plan.py`` (TensorRT 10: weak typing with FP16/INT8 flags and a calibrator or
Q/DQ scales; TensorRT 11+: strongly typed from the FP16 / Q/DQ ONNX), tells the user what it
chose, and carries it out: plugin library, ONNX parser (errors name the failing nodes),
optimization profile, builder optimization level, workspace limit, DLA with GPU fallback,
timing cache reused across builds, a progress bar per build phase. Where TensorRT or a GPU is
missing (the build host) nothing fails: the result carries the exact command that finishes the
engine on the target, and ``engine_plan_or_command`` says what that command will choose there.

Imports neither torch nor onnx, so ``edgercnn build`` runs on a Jetson with the base install.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..._version import __version__
from ...config import CONFIG_KEY, read_onnx_metadata
from ...errors import BackendError
from ...files import atomic_write_bytes, sha256_file
from .cuda import query_cuda_device
from .plan import (
    BuildStrategy,
    EngineBuildError,
    EngineOptions,
    ParserIssue,
    TensorRTVersion,
    build_command,
    check_dla_shapes,
    choose_strategy,
    default_engine_path,
    default_timing_cache,
    describe_profile,
    dla_settings,
    format_parser_errors,
    parse_calibration_cache_header,
    parse_trt_version,
    profile_shapes,
    read_timing_cache,
)
from .sidecar import EngineInfo, GpuInfo, TensorInfo, write_sidecar

if TYPE_CHECKING:
    import tensorrt as trt

__all__ = ["EngineBuildError", "EngineOptions", "EngineResult", "build_engine", "engine_plan_or_command"]


@dataclass(frozen=True)
class EngineResult:
    """What ``build_engine`` did: the engine and sidecar, or why not and the command to run."""

    built: bool
    command: str  # the `edgercnn build` command for this engine (always set)
    plan: list[str] = field(default_factory=list)  # what was chosen, and why
    engine_path: Path | None = None
    sidecar_path: Path | None = None
    seconds: float = 0.0
    reason: str = ""  # why nothing was built here

    def summary(self) -> str:
        if self.built:
            return f"engine {self.engine_path} ({self.seconds:.0f} s), sidecar {self.sidecar_path}"
        return f"no engine built here ({self.reason}); on the target run:\n  {self.command}"


def detect_tensorrt(device: int = 0) -> tuple[TensorRTVersion | None, GpuInfo | None, str]:
    """(TensorRT version, GPU, "") when an engine can be built here, else (.., .., why not)."""
    from .cuda import GpuUnavailableError
    from .plugins import import_tensorrt

    try:
        module = import_tensorrt()
    except BackendError as exc:
        return None, None, str(exc)
    version = parse_trt_version(str(module.__version__))
    try:
        gpu = query_cuda_device(device)
    except GpuUnavailableError as exc:
        return version, None, str(exc)
    return version, gpu, ""


def read_model_config(onnx_path: Path) -> dict[str, Any]:
    """The ``edgercnn.config`` dict of an ONNX file (the engine's sidecar carries it on)."""
    if not onnx_path.is_file():
        raise EngineBuildError(f"{onnx_path}: ONNX file not found")
    props = read_onnx_metadata(onnx_path)
    if CONFIG_KEY not in props:
        raise EngineBuildError(
            f"{onnx_path}: has no '{CONFIG_KEY}' metadata; engines are built from ONNX files written by "
            "'edgercnn export' (or 'edgercnn quantize'), which the runtime can describe"
        )
    try:
        config = json.loads(props[CONFIG_KEY])
    except json.JSONDecodeError as exc:
        raise EngineBuildError(f"{onnx_path}: '{CONFIG_KEY}' is not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise EngineBuildError(f"{onnx_path}: '{CONFIG_KEY}' is not a JSON object")
    return config


def _cache_algorithm(options: EngineOptions) -> str | None:
    if options.precision != "int8" or options.calib_cache is None or not options.calib_cache.is_file():
        return None
    _, algorithm = parse_calibration_cache_header(options.calib_cache.read_bytes(), options.calib_cache)
    return algorithm


def engine_plan_or_command(
    onnx_path: str | Path, options: EngineOptions, engine_path: Path | None = None
) -> str:
    """What to tell the user when exporting: build here, or the command that finishes it on the target
    and what TensorRT 10 (JetPack 6) and 11 will choose there."""
    onnx_path = Path(onnx_path)
    options.validate()
    config = read_model_config(onnx_path)
    engine_path = engine_path or default_engine_path(onnx_path, options.precision)
    command = build_command(onnx_path, engine_path, options)
    version, gpu, reason = detect_tensorrt(options.device)
    onnx_precision = str(config.get("precision", "fp32"))
    algorithm = _cache_algorithm(options)
    has_images = options.calib_images is not None
    if version is not None and gpu is not None:
        strategy = choose_strategy(
            version, options.precision, onnx_precision, algorithm, has_images, options.dla_core
        )
        return "\n".join([f"TensorRT {version} on {gpu.name}: building {engine_path}", *strategy.notes])
    lines = [f"TensorRT engine not built here ({reason}). To finish it, run on the target:", f"  {command}"]
    for target in (TensorRTVersion(10, 3, 0, 0), TensorRTVersion(11, 0, 0, 0)):
        try:
            notes = choose_strategy(
                target, options.precision, onnx_precision, algorithm, has_images, options.dla_core
            )
            lines.append(f"  there, with TensorRT {target.major}.x: " + "; ".join(notes.notes))
        except EngineBuildError as exc:
            lines.append(f"  there, with TensorRT {target.major}.x: cannot build: {exc}")
    return "\n".join(lines)


def build_engine(
    onnx_path: str | Path, engine_path: str | Path | None, options: EngineOptions
) -> EngineResult:
    """Build (or explain how to build) the engine for ``onnx_path``; see the module docstring."""
    onnx_path = Path(onnx_path)
    options.validate()
    model_config = read_model_config(onnx_path)
    engine_path = (
        Path(engine_path) if engine_path is not None else default_engine_path(onnx_path, options.precision)
    )
    command = build_command(onnx_path, engine_path, options)
    version, gpu, reason = detect_tensorrt(options.device)
    if version is None or gpu is None:
        return EngineResult(
            built=False,
            command=command,
            plan=[engine_plan_or_command(onnx_path, options, engine_path)],
            reason=reason,
        )
    onnx_precision = str(model_config.get("precision", "fp32"))
    strategy = choose_strategy(
        version,
        options.precision,
        onnx_precision,
        _cache_algorithm(options),
        options.calib_images is not None,
        options.dla_core,
    )
    plan = [
        f"TensorRT {version} on {gpu.name} (compute capability {gpu.compute_capability})",
        *strategy.notes,
    ]
    for line in plan:
        print(line, file=sys.stderr)
    started = time.perf_counter()
    info_io, builder_facts = _build_with_tensorrt(
        onnx_path, engine_path, options, strategy, model_config, plan
    )
    seconds = time.perf_counter() - started
    info = EngineInfo(
        sidecar_version=1,
        engine_file=engine_path.name,
        engine_sha256=sha256_file(engine_path),
        tensorrt_version=str(version),
        gpu=gpu,
        precision=strategy.precision,
        strategy=strategy.typing,
        onnx_file=str(onnx_path),
        onnx_sha256=sha256_file(onnx_path),
        plugin_library=str(options.plugin_lib.resolve()) if options.plugin_lib else None,
        plugin_sha256=sha256_file(options.plugin_lib) if options.plugin_lib else None,
        inputs=info_io[0],
        outputs=info_io[1],
        build_command=command,
        dla_core=options.dla_core,
        int8_source=_int8_source(strategy, builder_facts, plan),
        builder=builder_facts,
        edgercnn_version=__version__,
        built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    sidecar = write_sidecar(engine_path, model_config, info)
    return EngineResult(True, command, plan, engine_path, sidecar, seconds)


def _build_with_tensorrt(
    onnx_path: Path,
    engine_path: Path,
    options: EngineOptions,
    strategy: BuildStrategy,
    model_config: dict[str, Any],
    plan: list[str],
) -> tuple[tuple[list[TensorInfo], list[TensorInfo]], dict[str, Any]]:
    """The TensorRT calls (run only where TensorRT and a GPU exist)."""
    import tensorrt as trt

    from ...config import ModelConfig
    from .backend import dims_tuple
    from .calibrator import CacheFile, CalibrationFeed, make_calibrator
    from .cuda import CudaDevice
    from .plugins import PluginChoice, load_plugin_library
    from .progress import PhaseBars, build_cancellable, make_progress_monitor

    logger = trt.Logger(trt.Logger.WARNING)
    choice = PluginChoice(options.plugin_lib, "--plugin-lib") if options.plugin_lib else None
    load_plugin_library(logger, choice, None)
    builder = trt.Builder(logger)
    flags = 0
    if strategy.typing == "strongly-typed" and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        raise EngineBuildError(
            format_parser_errors(onnx_path, _parser_issues(parser), options.plugin_lib is not None)
        )
    config = builder.create_builder_config()
    if options.workspace_mb is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mb << 20)
    config.builder_optimization_level = options.opt_level
    for flag in strategy.flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    dla = dla_settings(options.dla_core, builder.num_DLA_cores)
    if dla is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = dla.core
        _say(plan, f"DLA core {dla.core}, layers DLA cannot run fall back to the GPU")

    inputs: list[TensorInfo] = []
    profile = builder.create_optimization_profile()
    calibration_profile = builder.create_optimization_profile()
    dynamic = False
    calib_batch = 1
    for index in range(network.num_inputs):
        tensor = network.get_input(index)
        shapes = profile_shapes(tensor.name, dims_tuple(tensor.shape), options.batch)
        check_dla_shapes(options.dla_core, tensor.name, shapes)
        _say(plan, describe_profile(tensor.name, shapes))
        profile_dict = None
        if shapes.min != shapes.max or any(d < 0 for d in dims_tuple(tensor.shape)):
            dynamic = True
            profile.set_shape(
                tensor.name,
                trt.Dims(list(shapes.min)),
                trt.Dims(list(shapes.opt)),
                trt.Dims(list(shapes.max)),
            )
            opt = trt.Dims(list(shapes.opt))
            calibration_profile.set_shape(tensor.name, opt, opt, opt)
            profile_dict = {"min": list(shapes.min), "opt": list(shapes.opt), "max": list(shapes.max)}
        calib_batch = shapes.opt[0]
        inputs.append(
            TensorInfo(tensor.name, tensor.dtype.name, list(dims_tuple(tensor.shape)), profile_dict)
        )
    if dynamic:
        config.add_optimization_profile(profile)
    outputs = [
        TensorInfo(t.name, t.dtype.name, list(dims_tuple(t.shape)))
        for t in (network.get_output(i) for i in range(network.num_outputs))
    ]

    timing_path = options.timing_cache or default_timing_cache(engine_path)
    previous = read_timing_cache(timing_path)
    timing_cache = config.create_timing_cache(previous)
    if not config.set_timing_cache(timing_cache, False):
        timing_cache = config.create_timing_cache(b"")
        config.set_timing_cache(timing_cache, True)
        _say(plan, f"timing cache {timing_path} was made on another device or TensorRT: starting a new one")
    else:
        _say(plan, f"timing cache {timing_path} ({'reused' if previous else 'new'})")

    cleanup: list[Any] = []
    device = None
    if strategy.calibrator is not None:
        cache = CacheFile(options.calib_cache or engine_path.with_name(engine_path.name + ".calib.cache"))
        feed = None
        if options.calib_images is not None:
            feed = CalibrationFeed(
                options.calib_images, ModelConfig.from_dict(model_config, onnx_path), calib_batch
            )
            _say(
                plan,
                f"calibration: {len(feed)} batches of {calib_batch} from {options.calib_images}"
                + (f" ({feed.left_out} images left out to keep batches whole)" if feed.left_out else ""),
            )
            device = CudaDevice(options.device)
        calibrator, core = make_calibrator(strategy.calibrator, feed, cache, inputs[0].name, device)
        cleanup.append(core)
        config.int8_calibrator = calibrator
        if dynamic:
            config.set_calibration_profile(calibration_profile)

    bars = PhaseBars()
    config.progress_monitor = make_progress_monitor(bars)
    try:
        serialized = build_cancellable(
            bars, lambda: builder.build_serialized_network(network, config), str(onnx_path)
        )
    finally:
        bars.close()
        for core in cleanup:
            core.release()
        if device is not None:
            device.close()
    if serialized is None:
        raise EngineBuildError(f"{onnx_path}: TensorRT could not build the engine (its log above says why)")
    atomic_write_bytes(engine_path, bytes(serialized))
    atomic_write_bytes(timing_path, bytes(config.get_timing_cache().serialize()))
    facts = {
        "opt_level": options.opt_level,
        "workspace_mb": options.workspace_mb,
        "timing_cache": str(timing_path),
        "flags": list(strategy.flags),
        "calibration_cache": str(options.calib_cache) if options.calib_cache else None,
        "calibration_batches": sum(core.batches_served for core in cleanup),
    }
    return (inputs, outputs), facts


def _int8_source(strategy: BuildStrategy, facts: dict[str, Any], plan: list[str]) -> str | None:
    """Where the INT8 scales really came from: TensorRT recalibrates when it rejects a cache."""
    if strategy.int8_source == "calibration-cache" and facts.get("calibration_batches"):
        _say(plan, "TensorRT did not accept the calibration cache and calibrated on the images instead")
        return "calibrated"
    return strategy.int8_source


def _say(plan: list[str], line: str) -> None:
    """Record a decision and tell the user now (builds take minutes)."""
    plan.append(line)
    print(line, file=sys.stderr)


def _parser_issues(parser: trt.OnnxParser) -> list[ParserIssue]:
    issues = []
    for index in range(parser.num_errors):
        error = parser.get_error(index)
        issues.append(
            ParserIssue(
                code=str(error.code()),
                description=str(error.desc()),
                node_index=int(error.node()),
                node_name=str(error.node_name()),
                node_operator=str(error.node_operator()),
            )
        )
    return issues
