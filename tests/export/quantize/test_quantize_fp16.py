"""FP16 ONNX: float16 trunk, float32 box arithmetic and I/O, runs in onnxruntime close to FP32."""

from __future__ import annotations

import json

import onnx
import pytest
from edgercnn.export.quantize.fp16 import Fp16Error, convert_to_fp16, detection_parity
from edgercnn.runtime.calibration import iter_calibration_batches
from edgercnn.runtime.config import ModelConfig

from tests.builders.onnx_detector import tiny_detector, write_images

FLOAT, HALF = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("fp16")
    fp32 = tiny_detector(root / "tiny.onnx")
    return root, fp32, convert_to_fp16(fp32, root / "tiny.fp16.onnx")


def _types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {
        v.name: v.type.tensor_type.elem_type for v in (*inferred.graph.value_info, *inferred.graph.input)
    }
    types.update({v.name: v.type.tensor_type.elem_type for v in inferred.graph.output})
    types.update({i.name: i.data_type for i in inferred.graph.initializer})
    return types


def test_conv_weights_are_float16_and_io_stays_float32(converted):
    _, _, path = converted
    model = onnx.load(str(path))
    types = _types(model)
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert len(convs) == 8 and all(types[n.input[1]] == HALF for n in convs)
    assert types["images"] == FLOAT and types["boxes"] == FLOAT and types["scores"] == FLOAT
    assert (
        json.loads({p.key: p.value for p in model.metadata_props}["edgercnn.config"])["precision"] == "fp16"
    )


def test_box_arithmetic_and_topk_stay_float32_without_float16_round_trips(converted):
    _, _, path = converted
    model = onnx.load(str(path))
    types = _types(model)
    for name in ("dxy4", "ctr", "ewh", "half", "p1", "p2", "raw_boxes", "clip_boxes", "topk", "gather_boxes"):
        node = next(n for n in model.graph.node if n.name == name)
        assert all(types.get(i) != HALF for i in node.input if i), name
    producers = {o: n for n in model.graph.node for o in n.output}
    for node in model.graph.node:  # no Cast(float32) fed by a Cast(float16)
        if node.op_type == "Cast" and node.attribute[0].i == FLOAT and node.input[0] in producers:
            source = producers[node.input[0]]
            assert not (source.op_type == "Cast" and source.attribute[0].i == HALF), node.name


def test_fp16_detections_match_fp32_in_onnxruntime(converted):
    root, fp32, path = converted
    write_images(root / "imgs", 3, seed=4)
    config = ModelConfig.from_model_file(fp32)
    feeds = [{"images": b} for b in iter_calibration_batches(root / "imgs", config)]
    summary = detection_parity(fp32, path, feeds)
    assert summary["reference_detections"] > 0
    assert summary["matched"] >= 0.9 * summary["reference_detections"]
    assert summary["max_box_error_px"] < 0.5 and summary["max_score_error"] < 5e-3


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(Fp16Error, match="not found"):
        convert_to_fp16(tmp_path / "nope.onnx", tmp_path / "out.onnx")
