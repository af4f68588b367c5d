"""On a device with TensorRT and a CUDA GPU (marker ``gpu``): build real engines and run them.

These are the code paths the development machines cannot execute (no GPU, no TensorRT): the
builder's TensorRT calls (plugin library, ONNX parser, profiles, timing cache, progress monitor,
INT8 calibrator, DLA), the sidecar check against the real device, and the backend's pinned
buffers, async copies, ``execute_async_v3``, CUDA events and CUDA graphs. Each check compares
with an independent reference: an Identity or 1x1-convolution graph (the output must equal the
input, or its convolution computed in numpy), and onnxruntime's detections for a real model.

Run on the device (docs/jetson.md, "Verify on the device"):
    EDGERCNN_PLUGIN_LIB=plugins/build/libedgercnn_plugins.so \
        python -m pytest -m gpu tests/test_engine_device.py -v
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from edgercnn.runtime.backends.base import open_backend
from edgercnn.runtime.backends.tensorrt.builder import build_engine, detect_tensorrt
from edgercnn.runtime.backends.tensorrt.plan import (
    BatchProfile,
    EngineOptions,
    parse_calibration_cache_header,
)
from edgercnn.runtime.backends.tensorrt.sidecar import EngineCompatibilityError, read_sidecar, sidecar_path

from tests.builders.engine_inputs import model_config, write_onnx
from tests.paths import REPO_ROOT

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module", autouse=True)
def _tensorrt_and_gpu() -> None:
    version, gpu, reason = detect_tensorrt()
    if version is None or gpu is None:
        pytest.skip(f"needs TensorRT and a CUDA GPU: {reason}")
    pytest.importorskip("pycuda.driver", reason="the TensorRT backend needs pycuda")


def _identity(tmp_path: Path) -> Path:
    return write_onnx(tmp_path / "identity.onnx", model_config(batch="dynamic"), batch=None)


def _conv1x1(path: Path, weight: np.ndarray) -> Path:
    """images -> 1x1 Conv (3->3, no bias) -> 'boxes': a layer INT8 calibration can quantize."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    dims: list[int | str] = ["N", 3, 64, 96]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["images", "w"], ["boxes"], name="conv1x1")],
        "conv",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, dims)],
        [numpy_helper.from_array(weight.reshape(3, 3, 1, 1).astype(np.float32), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    helper.set_model_props(model, {"edgercnn.config": json.dumps(model_config(batch="dynamic"))})
    onnx.save(model, str(path))
    return path


def _run(engine: Path, batch: np.ndarray, **extra: Any) -> tuple[np.ndarray, dict[str, float]]:
    backend = open_backend(engine, "tensorrt", **extra)
    try:
        out = backend.infer(batch)["boxes"]
        return out, dict(backend.last_timings)  # type: ignore[attr-defined]
    finally:
        backend.close()


def test_fp32_identity_engine_returns_its_input_for_every_batch_size(tmp_path: Path) -> None:
    options = EngineOptions(precision="fp32", batch=BatchProfile(1, 2, 4))
    result = build_engine(_identity(tmp_path), tmp_path / "id.engine", options)
    assert result.built, result.summary()
    info = read_sidecar(tmp_path / "id.engine").engine
    assert info.inputs[0].profile == {"min": [1, 3, 64, 96], "opt": [2, 3, 64, 96], "max": [4, 3, 64, 96]}
    assert (tmp_path / "timing.cache").stat().st_size > 0
    backend = open_backend(tmp_path / "id.engine", "tensorrt")
    try:
        assert backend.inputs[0].shape == (None, 3, 64, 96)
        rng = np.random.default_rng(0)
        for n in (1, 3, 4, 6):  # 6 > profile max 4: split into 4 + 2
            x = rng.standard_normal((n, 3, 64, 96)).astype(np.float32)
            np.testing.assert_array_equal(backend.infer(x)["boxes"], x)
        timings = backend.last_timings  # type: ignore[attr-defined]
        assert set(timings) == {"h2d_ms", "execute_ms", "d2h_ms"} and min(timings.values()) >= 0
    finally:
        backend.close()


def test_cuda_graph_replay_gives_the_plain_results(tmp_path: Path) -> None:
    weight = np.random.default_rng(1).standard_normal((3, 3)).astype(np.float32)
    onnx = _conv1x1(tmp_path / "conv.onnx", weight)
    assert build_engine(
        onnx, tmp_path / "c.engine", EngineOptions(precision="fp32", batch=BatchProfile(1, 2, 2))
    ).built
    x = np.random.default_rng(2).standard_normal((2, 3, 64, 96)).astype(np.float32)
    expected = np.einsum("oc,nchw->nohw", weight, x)
    backend = open_backend(tmp_path / "c.engine", "tensorrt", cuda_graph=True)
    try:
        # plain, capture, replay; then batch 1 (plain again after the shape change, capture, replay)
        # and back to 2: a graph captured before a shape change is never replayed after it
        for batch in (2, 2, 2, 1, 1, 1, 2, 2):
            got = backend.infer(x[:batch])["boxes"]
            np.testing.assert_allclose(got, expected[:batch], rtol=1e-4, atol=1e-4)
        assert not backend._graphs.failed  # type: ignore[attr-defined]
    finally:
        backend.close()


def test_second_build_reuses_the_timing_cache_and_fp16_stays_close(tmp_path: Path) -> None:
    onnx = _identity(tmp_path)
    first = build_engine(onnx, tmp_path / "a.engine", EngineOptions(precision="fp16"))
    second = build_engine(onnx, tmp_path / "b.engine", EngineOptions(precision="fp16"))
    assert first.built and second.built
    assert any("(new)" in line for line in first.plan) and any("(reused)" in line for line in second.plan)
    x = np.random.default_rng(3).random((1, 3, 64, 96)).astype(np.float32)
    out, _ = _run(tmp_path / "b.engine", x)
    np.testing.assert_allclose(out, x, rtol=1e-3, atol=1e-3)


def test_the_device_refuses_an_engine_whose_sidecar_does_not_match(tmp_path: Path) -> None:
    assert build_engine(_identity(tmp_path), tmp_path / "m.engine", EngineOptions(precision="fp32")).built
    path = sidecar_path(tmp_path / "m.engine")
    data = json.loads(path.read_text())
    data["tensorrt"]["tensorrt_version"] = "9.9.0.0"
    data["tensorrt"]["gpu"]["compute_capability"] = "1.0"
    path.write_text(json.dumps(data))
    with pytest.raises(
        EngineCompatibilityError, match=r"TensorRT 9\.9\.0\.0.*compute capability 1\.0.*Rebuild"
    ):
        open_backend(tmp_path / "m.engine", "tensorrt")


def test_int8_calibrates_on_the_device_then_reuses_the_cache(tmp_path: Path) -> None:
    import cv2

    version, _, _ = detect_tensorrt()
    assert version is not None
    if version.major >= 11:
        pytest.skip("TensorRT 11 has no calibrators (Q/DQ only)")
    images = tmp_path / "calib"
    images.mkdir()
    rng = np.random.default_rng(4)
    for i in range(6):
        cv2.imwrite(str(images / f"{i}.png"), rng.integers(0, 255, (64, 96, 3), dtype=np.uint8))
    onnx = _conv1x1(tmp_path / "conv.onnx", np.eye(3, dtype=np.float32))
    cache = tmp_path / "conv.calib.cache"
    options = EngineOptions(
        precision="int8", calib_images=images, calib_cache=cache, batch=BatchProfile(1, 2, 2)
    )
    result = build_engine(onnx, tmp_path / "q.engine", options)
    assert result.built and cache.is_file()
    assert parse_calibration_cache_header(cache.read_bytes(), cache)[1] == "EntropyCalibration2"
    assert read_sidecar(tmp_path / "q.engine").engine.int8_source == "calibrated"
    again = build_engine(onnx, tmp_path / "q2.engine", EngineOptions(precision="int8", calib_cache=cache))
    assert again.built and read_sidecar(tmp_path / "q2.engine").engine.int8_source == "calibration-cache"
    x = rng.uniform(-2.0, 2.5, (2, 3, 64, 96)).astype(np.float32)
    out, _ = _run(tmp_path / "q.engine", x)
    np.testing.assert_allclose(out, x, atol=0.1)  # one INT8 step of a ~[-2.1, 2.6] range is ~0.02


def test_dla_build_with_gpu_fallback(tmp_path: Path) -> None:
    import tensorrt as trt

    if trt.Builder(trt.Logger(trt.Logger.WARNING)).num_DLA_cores == 0:
        pytest.skip("this device has no DLA")
    onnx = _conv1x1(tmp_path / "conv.onnx", np.eye(3, dtype=np.float32))
    result = build_engine(onnx, tmp_path / "dla.engine", EngineOptions(precision="fp16", dla_core=0))
    assert result.built and read_sidecar(tmp_path / "dla.engine").engine.dla_core == 0
    x = np.random.default_rng(5).random((1, 3, 64, 96)).astype(np.float32)
    np.testing.assert_allclose(_run(tmp_path / "dla.engine", x)[0], x, rtol=2e-3, atol=2e-3)


def test_reference_model_engine_with_plugins_matches_onnxruntime(tmp_path: Path) -> None:
    """The TensorRT-flavour export with edgercnn's plugins, as an FP16 engine, vs the portable
    ONNX in onnxruntime, on synthetic street scenes (needs torch for the export)."""
    pytest.importorskip("torch", reason="exporting the reference model needs torch")
    plugin = os.environ.get("EDGERCNN_PLUGIN_LIB")
    if not plugin or not Path(plugin).is_file():
        pytest.skip("set EDGERCNN_PLUGIN_LIB to the built libedgercnn_plugins.so")
    import cv2
    import torch
    from edgercnn.export.deploy.model import DeployOptions, DeployRCNN
    from edgercnn.export.metadata import build_config
    from edgercnn.export.onnx_export import export_onnx
    from edgercnn.export.refmodels.architectures import build_from_card, build_model, load_card
    from edgercnn.export.refmodels.synthdata.dataset import render_split_image
    from edgercnn.runtime.backends.tensorrt.parity import check_engine_parity

    card_path = REPO_ROOT / "models" / "ref_maskrcnn.json"
    if card_path.is_file():
        card = load_card(card_path)
        model, classes = build_from_card(card), list(card["class_names"])
    else:
        torch.manual_seed(0)
        model = build_model("ref_maskrcnn", box_score_thresh=0.01)
        classes = ["__background__", "person", "car", "plate"][
            : model.roi_heads.box_predictor.cls_score.out_features
        ]
    deploy = DeployRCNN(model.eval(), DeployOptions(source_height=288, source_width=384)).eval()
    files = {}
    for flavour, name in (("portable", "model.onnx"), ("tensorrt", "model.trt.onnx")):
        config = build_config(deploy, builder="ref_maskrcnn", class_names=classes, flavour=flavour)
        files[flavour] = export_onnx(deploy, tmp_path / name, config, flavour=flavour).path
    images = tmp_path / "images"
    images.mkdir()
    for i in range(8):
        _, jpeg = render_split_image(7, "val", i, 384, 288)
        (images / f"{i}.jpg").write_bytes(jpeg)
    assert cv2.imread(str(images / "0.jpg")) is not None
    options = EngineOptions(precision="fp16", plugin_lib=Path(plugin))
    result = build_engine(files["tensorrt"], tmp_path / "model.fp16.engine", options)
    assert result.built, result.summary()
    report = check_engine_parity(result.engine_path, files["portable"], images, Path(plugin))
    print(report.text())
    assert report.passed, report.text()
