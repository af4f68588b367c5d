"""The engine sidecar: written and read back intact, read by ModelConfig like ONNX metadata, and
``check_sidecar`` refusing (with the rebuild command) every incompatibility it is meant to catch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from edgercnn.runtime.backends.tensorrt.cuda import GpuUnavailableError, query_cuda_device
from edgercnn.runtime.backends.tensorrt.sidecar import (
    DeviceEnvironment,
    EngineCompatibilityError,
    GpuInfo,
    check_sidecar,
    read_sidecar,
    sidecar_path,
    write_sidecar,
)
from edgercnn.runtime.config import ModelConfig
from edgercnn.runtime.errors import ModelFormatError
from edgercnn.runtime.files import sha256_file

from tests.builders.engine_inputs import engine_info, model_config

ORIN = GpuInfo("Orin", "8.7")
MATCHING = DeviceEnvironment("10.3.0.30", ORIN, "c" * 64)


@pytest.fixture
def engine(tmp_path: Path) -> Path:
    path = tmp_path / "model.fp16.engine"
    path.write_bytes(b"not really an engine")
    return path


def test_sidecar_round_trip_keeps_every_field(engine: Path) -> None:
    info = engine_info(dla_core=0, int8_source=None, builder={"opt_level": 3})
    written = write_sidecar(engine, model_config(), info)
    assert written == sidecar_path(engine) == engine.with_name("model.fp16.engine.json")
    back = read_sidecar(engine)
    assert back.engine == info
    assert back.model == model_config()
    assert set(engine.parent.iterdir()) == {engine, written}  # no temporary file left behind


def test_model_config_reads_the_sidecar_like_onnx_metadata(engine: Path) -> None:
    write_sidecar(engine, model_config(batch="dynamic"), engine_info())
    config = ModelConfig.from_model_file(engine)
    assert config.batch is None
    assert config.class_names == ("__background__", "person", "car", "plate")
    assert config.input.height == 64 and config.input.width == 96


def test_matching_device_passes_without_warnings(engine: Path) -> None:
    write_sidecar(engine, model_config(), engine_info(engine_sha256=sha256_file(engine)))
    assert check_sidecar(engine, read_sidecar(engine), MATCHING, engine_sha256=sha256_file(engine)) == []


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        (
            DeviceEnvironment("10.4.0.26", ORIN, "c" * 64),
            "built with TensorRT 10.3.0.30, this device has 10.4.0.26",
        ),
        (DeviceEnvironment("11.0.0.1", ORIN, "c" * 64), "this device has 11.0.0.1"),
        (DeviceEnvironment("10.3.0.30", GpuInfo("NVIDIA H100", "9.0"), "c" * 64), "compute capability 9.0"),
        (DeviceEnvironment("10.3.0.30", None, "c" * 64), "no CUDA GPU"),
        (DeviceEnvironment("10.3.0.30", ORIN, None), "pass --plugin-lib"),
        (DeviceEnvironment("10.3.0.30", ORIN, "d" * 64), "plugin library differs"),
    ],
)
def test_incompatible_device_is_refused_with_the_rebuild_command(
    engine: Path, device: DeviceEnvironment, expected: str
) -> None:
    info = engine_info()
    write_sidecar(engine, model_config(), info)
    with pytest.raises(EngineCompatibilityError) as caught:
        check_sidecar(engine, read_sidecar(engine), device)
    message = str(caught.value)
    assert expected in message
    assert str(engine) in message
    assert message.endswith(f"Rebuild it on this device: {info.build_command}")


def test_all_problems_are_named_in_one_message(engine: Path) -> None:
    write_sidecar(engine, model_config(), engine_info())
    device = DeviceEnvironment("11.1.0.0", GpuInfo("RTX 4090", "8.9"), "d" * 64)
    with pytest.raises(EngineCompatibilityError) as caught:
        check_sidecar(engine, read_sidecar(engine), device, engine_sha256="e" * 64)
    message = str(caught.value)
    for part in (
        "another engine file",
        "TensorRT 10.3.0.30",
        "compute capability 8.9",
        "plugin library differs",
    ):
        assert part in message


def test_patch_release_and_gpu_name_differences_only_warn(engine: Path) -> None:
    write_sidecar(engine, model_config(), engine_info())
    device = DeviceEnvironment("10.3.0.26", GpuInfo("Orin (nvgpu)", "8.7"), "c" * 64)
    warnings = check_sidecar(engine, read_sidecar(engine), device)
    assert len(warnings) == 2
    assert "10.3.0.26" in warnings[0] and "Orin (nvgpu)" in warnings[1]


def test_engine_without_plugins_needs_no_plugin_library(engine: Path) -> None:
    write_sidecar(engine, model_config(), engine_info(plugin_library=None, plugin_sha256=None))
    device = DeviceEnvironment("10.3.0.30", ORIN, None)
    assert check_sidecar(engine, read_sidecar(engine), device) == []


def test_missing_sidecar_names_the_engine_and_the_fix(engine: Path) -> None:
    with pytest.raises(
        ModelFormatError, match=r"model\.fp16\.engine: engine has no sidecar .*edgercnn build"
    ):
        read_sidecar(engine)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "cannot read the engine sidecar"),
        (json.dumps(model_config()), "has no 'tensorrt' object"),
        (json.dumps({**model_config(), "tensorrt": {"sidecar_version": 1}}), "malformed"),
        (
            json.dumps({**model_config(), "tensorrt": {"sidecar_version": 7, "build_command": "B"}}),
            "version 7",
        ),
    ],
)
def test_malformed_sidecar_is_a_model_format_error(engine: Path, content: str, expected: str) -> None:
    sidecar_path(engine).write_text(content)
    with pytest.raises(ModelFormatError, match=expected):
        read_sidecar(engine)


def test_config_with_a_tensorrt_key_is_rejected(engine: Path) -> None:
    with pytest.raises(ValueError, match="tensorrt"):
        write_sidecar(engine, {**model_config(), "tensorrt": {}}, engine_info())


def test_device_query_gives_a_compute_capability_or_a_clear_reason() -> None:
    try:
        gpu = query_cuda_device(0)
    except GpuUnavailableError as exc:  # no NVIDIA driver here, or no device 0
        assert "libcuda" in str(exc) or "CUresult" in str(exc)
    else:
        major, minor = gpu.cc_tuple
        assert major >= 3 and minor >= 0 and gpu.name
