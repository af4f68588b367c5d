"""Model config from ONNX metadata / engine sidecar; bad files get one clear error naming them."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from edgercnn.runtime.config import ModelConfig, read_onnx_metadata
from edgercnn.runtime.errors import ModelFormatError
from onnx import helper

from tests.builders.fixed_onnx import identity_model, make_tiny_onnx, tiny_config, tiny_outputs


def test_config_read_from_onnx_metadata_equals_what_was_written(tmp_path):
    raw = tiny_config("keypointrcnn", batch="dynamic")
    path = make_tiny_onnx(tmp_path / "m.onnx", raw, tiny_outputs(raw, 2))
    onnx_props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert read_onnx_metadata(path) == onnx_props
    config = ModelConfig.from_model_file(path)
    assert config.architecture == "keypointrcnn" and config.batch is None and config.has_keypoints
    assert config.class_names == tuple(raw["class_names"])
    assert config.input.mean == tuple(raw["input"]["mean"])


def test_engine_config_comes_from_its_sidecar(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\0" * 16)
    with pytest.raises(ModelFormatError, match=r"m\.engine.*sidecar"):
        ModelConfig.from_model_file(engine)
    (tmp_path / "m.engine.json").write_text(json.dumps({**tiny_config(), "tensorrt_version": "10.9"}))
    assert ModelConfig.from_model_file(engine).architecture == "maskrcnn"


def _plain_onnx(path, props=None):
    model = identity_model()
    if props:
        helper.set_model_props(model, props)
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize(
    ("props", "message"),
    [
        (None, "no 'edgercnn.config'"),
        ({"edgercnn.config": "{not json"}, "not valid JSON"),
        ({"edgercnn.config": json.dumps({**tiny_config(), "format_version": 7})}, "format_version 7"),
        ({"edgercnn.config": json.dumps({**tiny_config(), "architecture": "yolo"})}, "unknown architecture"),
        (
            {"edgercnn.config": json.dumps({k: v for k, v in tiny_config().items() if k != "input"})},
            "no key 'input'",
        ),
    ],
    ids=["no-metadata", "bad-json", "future-version", "bad-architecture", "missing-key"],
)
def test_bad_metadata_is_refused_with_the_file_name(tmp_path, props, message):
    path = _plain_onnx(tmp_path / "bad.onnx", props)
    with pytest.raises(ModelFormatError, match=message) as info:
        ModelConfig.from_model_file(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("content", [b"", b"this is not a protobuf at all", b"\x0a\xff\xff\xff\xff\x0f"])
def test_non_onnx_files_are_refused_with_the_file_name(tmp_path, content):
    path = tmp_path / "junk.onnx"
    path.write_bytes(content)
    with pytest.raises(ModelFormatError, match=r"junk\.onnx"):
        ModelConfig.from_model_file(path)


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(ModelFormatError, match="does not exist"):
        ModelConfig.from_model_file(tmp_path / "nope.onnx")


def test_metadata_reader_skips_a_large_graph_without_reading_it(tmp_path):
    raw = tiny_config(detections=100)
    outputs = tiny_outputs(raw, 3)
    outputs["masks"] = (
        np.zeros((1, 100, 28, 28), np.float32) + np.arange(100, dtype=np.float32)[None, :, None, None]
    )
    path = make_tiny_onnx(tmp_path / "big.onnx", raw, outputs)
    assert json.loads(read_onnx_metadata(path)["edgercnn.config"]) == raw
