"""Which nodes become int8: feature layers, prediction layers, the CPU int8 region."""

from __future__ import annotations

import onnx
import pytest
from edgercnn.export.quantize.qdq import plan_layers

from tests.builders.onnx_detector import tiny_detector

FEATURE = ["stem", "block_a", "block_b", "down", "lateral", "head"]
REGION = ["stem_relu", "block_a_relu", "res_add", "res_relu", "down_relu", "up", "fpn_add", "head_relu"]


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    model = onnx.load(str(tiny_detector(tmp_path_factory.mktemp("graph") / "tiny.onnx")))
    return plan_layers(model)


def test_weight_layers_split_into_feature_and_prediction_layers(plan):
    assert plan.feature_layers == FEATURE
    assert plan.prediction_layers == ["cls_logits", "bbox_pred"]


def test_cpu_region_is_the_trunk_between_feature_layers_and_never_the_box_arithmetic(plan):
    assert plan.cpu_region_ops == REGION
    assert plan.nodes_for("tensorrt") == FEATURE
    assert plan.nodes_for("cpu") == FEATURE + REGION


def test_region_ops_next_to_a_float_layer_stay_float(plan):
    nodes = plan.nodes_for("cpu", {"block_b"})
    assert "block_b" not in nodes
    # res_add reads block_b: it and everything fed only through it (res_relu, up, fpn_add) stay float
    assert not {"res_add", "res_relu", "up", "fpn_add"} & set(nodes)
    assert {"stem_relu", "block_a_relu", "down_relu", "head_relu"} <= set(nodes)
    assert plan.nodes_for("tensorrt", {"block_b"}) == [n for n in FEATURE if n != "block_b"]
