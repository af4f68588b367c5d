"""The build entry points where TensorRT is absent (the command for the target), the CLI's errors,
the calibrator's image feed and cache file, and the build progress bars."""

from __future__ import annotations

import io
import json
import os
import shlex
import signal
from pathlib import Path

import cv2
import edgercnn.runtime.backends.tensorrt.builder as engine_module
import numpy as np
import pytest
from edgercnn.runtime.backends.tensorrt.builder import build_engine, engine_plan_or_command
from edgercnn.runtime.backends.tensorrt.calibrator import CacheFile, CalibrationFeed, _CalibratorCore
from edgercnn.runtime.backends.tensorrt.plan import EngineBuildError, EngineOptions, TensorRTVersion
from edgercnn.runtime.backends.tensorrt.progress import PhaseBars, build_cancellable
from edgercnn.runtime.backends.tensorrt.sidecar import GpuInfo
from edgercnn.runtime.calibration import CalibrationError
from edgercnn.runtime.config import ModelConfig
from edgercnn.runtime.errors import Interrupted
from edgercnn.runtime.preprocess import prepare_batch

from tests.builders.engine_inputs import model_config, write_onnx
from tests.cli import verb
from tests.paths import REPO_ROOT

main = verb("build")


@pytest.fixture
def no_tensorrt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        engine_module, "detect_tensorrt", lambda device=0: (None, None, "TensorRT is not installed")
    )


@pytest.fixture
def onnx_fp32(tmp_path: Path) -> Path:
    return write_onnx(tmp_path / "model.trt.onnx", model_config("fp32"))


def test_without_tensorrt_build_returns_the_command_for_the_target(
    no_tensorrt: None, onnx_fp32: Path
) -> None:
    result = build_engine(onnx_fp32, None, EngineOptions(precision="fp16"))
    assert not result.built and result.engine_path is None
    assert result.reason == "TensorRT is not installed"
    expected_engine = onnx_fp32.with_name("model.trt.fp16.engine")
    assert shlex.split(result.command) == [
        "edgercnn", "build", str(onnx_fp32), "--engine", str(expected_engine), "--precision", "fp16",
    ]  # fmt: skip
    text = "\n".join(result.plan)
    assert result.command in text
    assert "TensorRT 10.x: TensorRT 10.3.0.0: FP16 builder flag" in text
    assert "TensorRT 11.x: cannot build" in text and "FP16 ONNX" in text
    assert not expected_engine.exists()


def test_plan_for_a_qdq_onnx_names_both_tensorrt_generations(no_tensorrt: None, tmp_path: Path) -> None:
    onnx = write_onnx(tmp_path / "model.int8.trt.onnx", model_config("int8-qdq"))
    text = engine_plan_or_command(onnx, EngineOptions(precision="int8"))
    assert "explicit INT8 from the ONNX's Q/DQ scales" in text
    assert "TensorRT 11.x: TensorRT 11.0.0.0: strongly typed network, precision int8" in text


def test_gpu_missing_is_reported_like_tensorrt_missing(
    monkeypatch: pytest.MonkeyPatch, onnx_fp32: Path
) -> None:
    monkeypatch.setattr(
        engine_module,
        "detect_tensorrt",
        lambda device=0: (TensorRTVersion(10, 3, 0, 30), None, "no CUDA driver"),
    )
    result = build_engine(onnx_fp32, None, EngineOptions(precision="fp32"))
    assert not result.built and result.reason == "no CUDA driver"


def test_plan_where_tensorrt_and_a_gpu_exist(monkeypatch: pytest.MonkeyPatch, onnx_fp32: Path) -> None:
    found = (TensorRTVersion(10, 3, 0, 30), GpuInfo("Orin", "8.7"), "")
    monkeypatch.setattr(engine_module, "detect_tensorrt", lambda device=0: found)
    text = engine_plan_or_command(onnx_fp32, EngineOptions(precision="fp16"))
    assert text.splitlines()[0].startswith("TensorRT 10.3.0.30 on Orin: building ")
    assert "FP16 builder flag" in text


def test_cli_without_tensorrt_prints_the_command_and_exits_1(
    no_tensorrt: None, onnx_fp32: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(onnx_fp32), "--precision", "fp16", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["built"] is False and out["command"].startswith("edgercnn build ")
    assert main([str(onnx_fp32), "--plan-only"]) == 0
    assert "edgercnn build" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("make", "args", "expected"),
    [
        (lambda d: d / "absent.onnx", [], "absent.onnx does not exist"),  # the parser's existence check
        (lambda d: write_onnx(d / "plain.onnx", None), [], "has no 'edgercnn.config' metadata"),
        (lambda d: _write(d / "junk.onnx", b"\xff\xff\xff"), [], "junk.onnx: is not a valid ONNX model"),
        (
            lambda d: write_onnx(d / "m.onnx", model_config()),
            ["--precision", "int8", "--calib-cache", "BAD"],
            "not a TensorRT calibration cache",
        ),
        (
            lambda d: write_onnx(d / "m.onnx", model_config()),
            ["--opt-level", "9"],
            "--opt-level: must be >= 0 and <= 5, got 9",
        ),
    ],
)
def test_cli_bad_input_is_one_clear_line(
    no_tensorrt: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make,
    args,
    expected,  # type: ignore[no-untyped-def]
) -> None:
    onnx = make(tmp_path)
    args = [str(tmp_path / "bad.cache") if a == "BAD" else a for a in args]
    (tmp_path / "bad.cache").write_text("not a cache\n")
    assert main([str(onnx), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgercnn build: error: ") and expected in err
    assert "Traceback" not in err


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.fixture
def calib_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "calib"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        cv2.imwrite(str(folder / f"img{i}.png"), rng.integers(0, 255, (50 + 10 * i, 70, 3), dtype=np.uint8))
    return folder


def test_calibration_feed_uses_the_runtime_preprocessing_byte_for_byte(calib_dir: Path) -> None:
    config = ModelConfig.from_dict(model_config(), "m.onnx")
    feed = CalibrationFeed(calib_dir, config, batch_size=2)
    assert len(feed) == 2 and feed.left_out == 1
    batches = list(feed)
    files = sorted(calib_dir.glob("*.png"))
    for k, batch in enumerate(batches):
        images = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in files[2 * k : 2 * k + 2]]
        expected, _ = prepare_batch(images, config)
        assert batch.shape == (2, 3, 64, 96) and batch.flags.c_contiguous
        np.testing.assert_array_equal(batch, expected)


def test_calibration_feed_refuses_an_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(CalibrationError, match="no calibration image"):
        CalibrationFeed(tmp_path / "empty", ModelConfig.from_dict(model_config()), 1)


class _RecordingDevice:
    """Stands in for the GPU: records what the calibrator copies (the copy itself is pycuda's)."""

    def __init__(self) -> None:
        self.copies: list[np.ndarray] = []
        self.allocations = 0

    def alloc(self, nbytes: int) -> _RecordingDevice:
        self.allocations += 1
        self.ptr = 0x1000
        return self

    def stream(self) -> _RecordingDevice:
        return self

    def synchronize(self) -> None:
        pass

    def copy_to_device(self, dst: object, src: np.ndarray, stream: object) -> None:
        self.copies.append(src.copy())

    def free(self) -> None:
        pass

    def push(self) -> None:
        self.pushed = getattr(self, "pushed", 0) + 1

    def pop(self) -> None:
        self.pushed -= 1


def test_calibrator_serves_every_batch_once_then_signals_the_end(calib_dir: Path) -> None:
    config = ModelConfig.from_dict(model_config())
    feed = CalibrationFeed(calib_dir, config, batch_size=2)
    device = _RecordingDevice()
    core = _CalibratorCore(feed, CacheFile(None), "images", device)  # type: ignore[arg-type]
    assert core.batch_size() == 2
    assert core.next_pointers(["images"]) == [0x1000]
    assert core.next_pointers(["images"]) == [0x1000]
    assert core.next_pointers(["images"]) is None
    assert device.allocations == 1 and core.batches_served == 2 and device.pushed == 0
    for served, expected in zip(device.copies, list(feed), strict=True):
        np.testing.assert_array_equal(served, expected)
    with pytest.raises(EngineBuildError, match="expected"):
        core.next_pointers(["input_0"])
    without_images = _CalibratorCore(None, CacheFile(None), "images", None)
    with pytest.raises(EngineBuildError, match="pass --calib-images"):
        without_images.next_pointers(["images"])


def test_cache_file_round_trip_and_validation(tmp_path: Path) -> None:
    cache = CacheFile(tmp_path / "sub" / "m.calib.cache")
    assert cache.read() is None
    payload = b"TRT-100300-EntropyCalibration2\nimages: 3c010204\n"
    cache.write(memoryview(payload))  # TensorRT hands the cache over as a buffer
    assert cache.written and cache.read() == payload
    (tmp_path / "sub" / "m.calib.cache").write_bytes(b"garbage")
    with pytest.raises(EngineBuildError, match="not a TensorRT calibration cache"):
        cache.read()


def test_progress_bars_follow_nested_phases_and_cancel() -> None:
    stream = io.StringIO()
    bars = PhaseBars(stream=stream)
    bars.phase_start("Building engine", None, 2)
    bars.phase_start("Tactic selection", "Building engine", 3)
    assert all(bars.step_complete("Tactic selection", step) for step in range(3))
    assert bars.snapshot() == {"Building engine": (0, 2), "Tactic selection": (3, 3)}
    bars.phase_finish("Tactic selection")
    assert bars.step_complete("Building engine", 0)
    bars.cancel()
    assert bars.step_complete("Building engine", 1) is False
    bars.phase_finish("Building engine")
    bars.close()
    assert bars.finished == ["Tactic selection", "Building engine"]
    text = stream.getvalue()
    assert "  Tactic selection:" in text and "Building engine: 100%" in text and "2/2" in text


def test_build_cli_needs_neither_torch_nor_onnx(onnx_fp32: Path) -> None:
    """A Jetson with the base install and TensorRT runs 'edgercnn build': no torch, no onnx."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['onnx'] = None\n"
        "import edgercnn.runtime.backends.tensorrt.builder as b\n"
        "b.detect_tensorrt = lambda device=0: (None, None, 'absent')\n"
        "from edgercnn.cli import main\n"
        f"sys.exit(main(['build', {str(onnx_fp32)!r}, '--precision', 'fp16', '--plan-only']))\n"
    )
    repo = REPO_ROOT
    done = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "edgercnn build " in done.stdout and "TensorRT 10.x" in done.stdout


def _build_interrupted_at_step(bars: PhaseBars, interrupt_at: int, steps: list[int]) -> None:
    """What TensorRT does: call step_complete until it returns False (Ctrl-C lands mid-build)."""
    bars.phase_start("Building engine", None, 100)
    for step in range(100):
        if step == interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)
        steps.append(step)
        if not bars.step_complete("Building engine", step):
            return None  # TensorRT stops and returns no engine
    return None


def test_ctrl_c_during_a_build_cancels_it_through_the_monitor_and_raises_interrupted() -> None:
    bars = PhaseBars(disable=True)
    steps: list[int] = []
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(Interrupted, match=r"model\.onnx: interrupted; no engine written") as stopped:
        build_cancellable(bars, lambda: _build_interrupted_at_step(bars, 3, steps), "model.onnx")
    assert stopped.value.exit_code == 130
    assert steps[-1] < 10  # stopped at the next step, not after the whole build
    assert signal.getsignal(signal.SIGINT) is before  # Ctrl-C behaves normally again afterwards
    finished = PhaseBars(disable=True)
    assert build_cancellable(finished, lambda: "engine", "model.onnx") == "engine"


def test_cli_build_interrupted_exits_130(
    onnx_fp32: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import edgercnn.runtime.commands.build as build_command

    def interrupted_build(*args: object, **kwargs: object) -> None:
        bars = PhaseBars(disable=True)
        return build_cancellable(bars, lambda: _build_interrupted_at_step(bars, 0, []), str(onnx_fp32))

    monkeypatch.setattr(build_command, "build_engine", interrupted_build)
    assert main([str(onnx_fp32), "--precision", "fp16"]) == 130
    err = capsys.readouterr().err
    assert "interrupted; no engine written" in err and "could not build" not in err
