"""The OpenVINO backend runs a portable model file as onnxruntime does, and refuses what it cannot run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from edgercnn.runtime.backends import open_backend
from edgercnn.runtime.errors import BackendError

from tests.builders.fixed_onnx import make_tiny_onnx, tiny_config, tiny_outputs

pytest.importorskip("openvino", reason="the openvino extra (part of dev) is not installed")


@pytest.mark.parametrize("kind", ["maskrcnn", "keypointrcnn"])
def test_openvino_outputs_equal_onnxruntime_by_name_and_dtype(tmp_path, kind):
    raw = tiny_config(kind, batch="dynamic")
    path = make_tiny_onnx(tmp_path / "m.onnx", raw, tiny_outputs(raw, 3))
    batch = np.random.default_rng(0).standard_normal((2, 3, 96, 128)).astype(np.float32)
    ov = open_backend(path, backend="openvino", threads=1)
    ort = open_backend(path, backend="onnxruntime", threads=1)
    got, want = ov.infer(batch), ort.infer(batch)
    assert ov.name == "openvino[CPU]" and set(got) == set(want) == set(raw["outputs"])
    for name in want:
        assert got[name].dtype == want[name].dtype, name
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-5, err_msg=name)
    first = ov.infer(batch)["boxes"].copy()
    ov.infer(batch * 2)  # the request's buffers are reused: earlier results must be copies
    np.testing.assert_array_equal(got["boxes"], first)


def test_openvino_refuses_a_gpu_device_in_one_line(tmp_path):
    raw = tiny_config()
    path = make_tiny_onnx(tmp_path / "m.onnx", raw, tiny_outputs(raw, 1))
    with pytest.raises(BackendError, match=r"m\.onnx: the openvino backend runs on the CPU only") as info:
        open_backend(path, backend="openvino", device="cuda")
    assert "\n" not in str(info.value)


def test_openvino_refuses_tensorrt_flavour_files(tmp_path):
    raw = {**tiny_config(), "flavour": "tensorrt"}
    path = make_tiny_onnx(tmp_path / "m.trt.onnx", raw, tiny_outputs(raw, 1))
    with pytest.raises(BackendError, match="TensorRT-flavour model"):
        open_backend(path, backend="openvino")


def test_openvino_names_an_unreadable_file(tmp_path):
    path = tmp_path / "broken.onnx"
    raw = tiny_config()
    make_tiny_onnx(path, raw, tiny_outputs(raw, 1))
    from edgercnn.runtime.config import ModelConfig

    config = ModelConfig.from_dict(json.loads(json.dumps(raw)), path)
    path.write_bytes(b"not an onnx file")
    with pytest.raises(BackendError, match=r"broken\.onnx: OpenVINO cannot load the model"):
        open_backend(path, backend="openvino", config=config)
