"""INT8 Q/DQ variants, shared ranges and the TensorRT cache, on a tiny detection-shaped model."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from edgercnn.export.quantize.measure import open_session, run_outputs
from edgercnn.export.quantize.pipeline import QuantizeOptions, quantize_model
from edgercnn.export.quantize.trtcache import read_calibration_cache
from edgercnn.runtime.calibration import iter_calibration_batches
from edgercnn.runtime.config import ModelConfig
from edgercnn.runtime.matching import detection_distance
from onnx import numpy_helper
from onnxruntime.quantization.calibrate import load_tensors_data

from tests.builders.onnx_detector import tiny_detector, write_images

FEATURE = {"stem", "block_a", "block_b", "down", "lateral", "head"}
PREDICTION = {"cls_logits", "bbox_pred"}


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    root = tmp_path_factory.mktemp("int8")
    model = tiny_detector(root / "tiny.onnx")
    write_images(root / "calib", 8, seed=1)
    report = quantize_model(
        model, root / "calib", root / "out", QuantizeOptions(method="minmax", bench_runs=1, progress=False)
    )
    return root, report


def _producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {out: node for node in model.graph.node for out in node.output}


def _inits(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}


def _node(model: onnx.ModelProto, name: str) -> onnx.NodeProto:
    return next(n for n in model.graph.node if n.name == name)


def test_writes_both_variants_cache_ranges_and_report(quantized):
    root, report = quantized
    out = root / "out"
    for name in ("tiny.int8.cpu.onnx", "tiny.int8.trt.onnx", "tiny.calib.cache", "tiny.int8.report.json"):
        assert (out / name).is_file(), name
    data = json.loads((out / "tiny.int8.report.json").read_text())
    assert set(data["variants"]) == {"cpu", "tensorrt"}
    assert set(data["prediction_layers_float"]) == PREDICTION
    assert report.calibration_images == 8


def test_tensorrt_variant_is_symmetric_int8_on_conv_inputs_and_weights_only(quantized):
    root, _ = quantized
    model = onnx.load(str(root / "out" / "tiny.int8.trt.onnx"))
    producers, inits = _producers(model), _inits(model)
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2:
            zero_point = inits[node.input[2]]
            assert zero_point.dtype == np.int8 and not zero_point.any(), node.name
    for name in FEATURE:
        conv = _node(model, name)
        assert producers[conv.input[0]].op_type == "DequantizeLinear"
        weight_dq = producers[conv.input[1]]
        assert weight_dq.op_type == "DequantizeLinear"
        assert inits[weight_dq.input[0]].dtype == np.int8
        assert inits[weight_dq.input[1]].shape == (inits[weight_dq.input[0]].shape[0],)  # per channel
        assert conv.input[2] in inits and inits[conv.input[2]].dtype == np.float32  # bias stays float
        consumers = [n for n in model.graph.node if conv.output[0] in n.input]
        assert all(n.op_type != "QuantizeLinear" for n in consumers)  # no Q/DQ on outputs
    for name in PREDICTION | {"dxy4", "ctr", "ewh", "half", "p1", "p2", "topk", "gather_boxes", "sigmoid"}:
        node = _node(model, name)
        assert all(
            producers.get(i) is None or producers[i].op_type != "DequantizeLinear" for i in node.input
        ), name


def test_cpu_variant_uses_the_measured_layout_and_keeps_box_arithmetic_float(quantized):
    root, report = quantized
    result = report.variants["cpu"]
    assert result.layout in report.cpu_layouts_ms
    assert result.layout == min(report.cpu_layouts_ms, key=report.cpu_layouts_ms.get)
    model = onnx.load(str(root / "out" / "tiny.int8.cpu.onnx"))
    producers, inits = _producers(model), _inits(model)
    activation_dtype = np.uint8 if result.layout == "u8s8" else np.int8
    stem = _node(model, "stem")
    assert inits[producers[stem.input[0]].input[2]].dtype == activation_dtype
    for name in PREDICTION:  # computed in float, from float weights (the input may be a dequantized feature)
        assert inits[_node(model, name).input[1]].dtype == np.float32
    for name in ("dxy4", "ctr", "ewh", "half", "p1", "p2", "topk", "gather_boxes", "sigmoid"):
        node = _node(model, name)
        assert all(producers.get(i) is None or producers[i].op_type != "DequantizeLinear" for i in node.input)


def test_variants_keep_metadata_and_detect_like_fp32(quantized):
    root, _ = quantized
    config = ModelConfig.from_model_file(root / "tiny.onnx")
    write_images(root / "held_out", 4, seed=9)
    feeds = [{"images": batch} for batch in iter_calibration_batches(root / "held_out", config)]
    reference = open_session(root / "tiny.onnx")
    for name in ("tiny.int8.cpu.onnx", "tiny.int8.trt.onnx"):
        path = root / "out" / name
        props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert json.loads(props["edgercnn.config"])["precision"] == "int8-qdq"
        session = open_session(path)
        distance = np.mean(
            [detection_distance(run_outputs(reference, f), run_outputs(session, f)) for f in feeds]
        )
        assert distance < 0.25, (name, distance)


def test_cache_parses_as_tensorrt_format_with_the_shared_ranges(quantized):
    root, report = quantized
    version, algorithm, scales = read_calibration_cache(root / "out" / "tiny.calib.cache")
    assert (version, algorithm) == (100300, "MinMaxCalibration")
    names = {v.name for v in onnx.load(str(root / "tiny.onnx")).graph.input}
    names |= {o for n in onnx.load(str(root / "tiny.onnx")).graph.node for o in n.output}
    assert scales and set(scales) <= names
    assert {"images", "stem.relu", "fpn.out"} <= set(scales)
    assert not set(scales) & {"cls_logits.out", "bbox_pred.out", "ctr", "all_boxes"}
    ranges = load_tensors_data(report.ranges_path)  # onnxruntime's own reader of the shared ranges
    for name, scale in scales.items():
        lo, hi = (np.asarray(v, dtype=np.float32) for v in ranges[name].range_value)
        assert scale == pytest.approx(max(abs(float(lo.min())), abs(float(hi.max()))) / 127, rel=1e-6)
    # The TensorRT Q/DQ model was made from the same statistics as the cache.
    model = onnx.load(str(root / "out" / "tiny.int8.trt.onnx"))
    producers, inits = _producers(model), _inits(model)
    dq = producers[_node(model, "block_a").input[0]]
    assert float(inits[dq.input[1]]) == pytest.approx(scales["stem.relu"], rel=1e-5)
