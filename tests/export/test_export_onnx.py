"""Exported ONNX files: portable flavour in onnxruntime vs eager, TensorRT flavour's plugin nodes,
dynamic batch, uint8 input, metadata. Exports are made once per module (they take seconds)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from edgercnn.export import metadata
from edgercnn.export.deploy import DeployOptions, DeployRCNN
from edgercnn.export.deploy.errors import ExportError
from edgercnn.export.onnx_export import FILE_NAMES, OPSET, PLUGIN_DOMAIN, export_onnx, plugin_nodes
from edgercnn.export.parity import padded_to_detections, parity_report
from edgercnn.runtime.contract import FORMAT_VERSION
from edgercnn.runtime.matching import ParityTally

from tests.builders.torch_models import random_bgr_images, random_images, tiny_model

HEIGHT, WIDTH = 96, 128
# Random-weight heatmaps need the exhaustive keypoint search (see test_export_deploy_graph.py).
EXHAUSTIVE = {"keypoint_window_radius": None}


def _export(tmp_path_factory, kind, flavour, batch, input_dtype="float32", simplify=True, **model_kwargs):
    model = tiny_model(kind, **model_kwargs)
    height, width = (90, 120) if input_dtype == "uint8" else (HEIGHT, WIDTH)
    deploy = DeployRCNN(model, DeployOptions(height, width, input_dtype, **EXHAUSTIVE)).eval()
    config = metadata.build_config(
        deploy,
        builder=f"tiny_{kind}",
        class_names=metadata.default_class_names(deploy.num_classes),
        batch=batch,
        flavour=flavour,
        checkpoint="tiny.pth",
        checkpoint_sha256="0" * 64,
    )
    out = tmp_path_factory.mktemp(f"{kind}_{flavour}_{batch}_{input_dtype}") / FILE_NAMES[flavour]
    result = export_onnx(deploy, out, config, flavour=flavour, batch=batch, do_simplify=simplify)
    return model, deploy, result


@pytest.fixture(scope="module")
def mask_portable(tmp_path_factory):
    return _export(tmp_path_factory, "maskrcnn", "portable", 2)


@pytest.fixture(scope="module")
def mask_tensorrt(tmp_path_factory):
    return _export(tmp_path_factory, "maskrcnn", "tensorrt", 2)


def _parity_with_file(model, result, flavour, kind, batch=2):
    images = random_bgr_images(4, HEIGHT, WIDTH, seed=11)
    report = parity_report(
        model,
        images,
        candidates=[flavour],
        batch=batch,
        work_dir=result.path.parent,
        deploy_options=EXHAUSTIVE,
    )
    return report["candidates"][flavour]


def _assert_parity(summary, kind):
    assert summary["reference_detections"] > 0
    assert summary["matched_share"] >= 0.995, summary
    assert summary["max_score_error"] <= 1e-3, summary
    if kind == "maskrcnn":
        assert summary["mean_mask_iou"] >= 0.99, summary
    if kind == "keypointrcnn":
        assert summary["max_keypoint_error_px"] <= 1e-2, summary


def test_portable_maskrcnn_in_onnxruntime_matches_eager(mask_portable):
    model, _, result = mask_portable
    _assert_parity(_parity_with_file(model, result, "portable", "maskrcnn"), "maskrcnn")


def test_portable_keypointrcnn_in_onnxruntime_matches_eager(tmp_path):
    kind = "keypointrcnn"
    model = tiny_model(kind)
    report = parity_report(
        model,
        random_bgr_images(2, HEIGHT, WIDTH, seed=2),
        candidates=["portable"],
        batch=1,
        work_dir=tmp_path,
        deploy_options=EXHAUSTIVE,
    )
    _assert_parity(report["candidates"]["portable"], kind)


def test_portable_flavour_uses_only_standard_onnx_ops(mask_portable):
    _, _, result = mask_portable
    model = (
        onnx.load(str(result.path.parent / "model.onnx"))
        if not result.path.exists()
        else onnx.load(str(result.path))
    )
    assert {node.domain for node in model.graph.node} <= {"", "ai.onnx"}
    assert {"RoiAlign", "NonMaxSuppression"} <= {node.op_type for node in model.graph.node}
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= OPSET


def test_tensorrt_flavour_has_one_plugin_node_per_custom_op(mask_tensorrt):
    _, _, result = mask_tensorrt
    model = onnx.load(str(result.path))
    nodes = plugin_nodes(model)
    kinds = sorted(node.op_type for node in nodes)
    # RPN NMS + final NMS; box RoIAlign + mask RoIAlign.
    assert kinds == ["EdgeRCNN_BatchedNMS"] * 2 + ["EdgeRCNN_MultiLevelRoIAlign"] * 2
    for node in nodes:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert node.domain == PLUGIN_DOMAIN
        assert attrs["plugin_version"] in (b"1", "1")
        assert attrs["plugin_namespace"] in (b"edgercnn", "edgercnn")
    assert not {"RoiAlign", "NonMaxSuppression"} & {node.op_type for node in model.graph.node}


def test_tensorrt_flavour_with_plugin_cpu_ops_matches_eager(mask_tensorrt):
    pytest.importorskip(
        "edgercnn.runtime.plugin_ops", reason="the plugins' CPU ops (runtime/plugin_ops.py) are needed"
    )
    model, _, result = mask_tensorrt
    _assert_parity(_parity_with_file(model, result, "tensorrt", "maskrcnn"), "maskrcnn")


def test_dynamic_batch_fasterrcnn_onnx_matches_eager_at_batch_1_and_3(tmp_path_factory):
    model, deploy, result = _export(tmp_path_factory, "fasterrcnn", "portable", "dynamic")
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[0] not in (1, 2, 3)  # a symbolic batch dimension
    for batch in (1, 3):
        images = random_images(batch, HEIGHT, WIDTH, seed=batch)
        with torch.inference_mode():
            reference = model(images)
            x = model.transform(images)[0].tensors.numpy()
        outputs = session.run(None, {"images": x})
        assert outputs[0].shape == (batch,)
        tally = ParityTally()
        for ref, cand in zip(reference, padded_to_detections(outputs, deploy), strict=True):
            tally.add({k: v.numpy() for k, v in ref.items()}, cand)
        assert tally.reference_detections > 0
        assert tally.matched_share >= 0.995, tally.summary()


def test_uint8_onnx_normalizes_inside_and_ignores_padding(tmp_path_factory):
    model, deploy, result = _export(
        tmp_path_factory, "fasterrcnn", "portable", 1, "uint8", simplify=False, min_size=90, max_size=120
    )
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(uint8)"
    bgr = random_bgr_images(1, 90, 120, seed=4)[0]
    batch = np.full((1, 3, deploy.geometry.height, deploy.geometry.width), 77, dtype=np.uint8)
    batch[0, :, :90, :120] = bgr.transpose(2, 0, 1)
    outputs = session.run(None, {"images": batch})
    rgb = torch.from_numpy(bgr[:, :, ::-1].copy()).permute(2, 0, 1).float() / 255.0
    with torch.inference_mode():
        reference = model([rgb])[0]
    tally = ParityTally()
    tally.add({k: v.numpy() for k, v in reference.items()}, padded_to_detections(outputs, deploy)[0])
    assert tally.reference_detections > 0
    assert tally.matched_share >= 0.995, tally.summary()


def test_metadata_round_trips_the_model_config(mask_tensorrt):
    _, deploy, result = mask_tensorrt
    path = result.path
    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    assert props["edgercnn.format_version"] == str(FORMAT_VERSION)
    config = metadata.read(path)
    assert config["architecture"] == "maskrcnn"
    assert config["flavour"] == "tensorrt"
    assert config["batch"] == 2
    assert config["outputs"] == [o.name for o in model.graph.output]
    assert config["class_names"][0] == "__background__" and len(config["class_names"]) == deploy.num_classes
    g = deploy.geometry
    assert (config["input"]["height"], config["input"]["width"]) == (g.height, g.width)
    assert (config["input"]["valid_height"], config["input"]["valid_width"]) == (
        g.valid_height,
        g.valid_width,
    )
    assert config["input"]["mean"] == deploy.mean and config["input"]["std"] == deploy.std
    assert config["detections_per_img"] == deploy.box_head.detections_per_img
    assert config["thresholds"]["rpn_post_nms_top_n"] == deploy.rpn.post_nms_top_n
    assert config["source"]["checkpoint_sha256"] == "0" * 64
    assert config["versions"]["opset"] >= 18
    inputs = model.graph.input[0].type.tensor_type
    assert [d.dim_value for d in inputs.shape.dim] == [2, 3, g.height, g.width]


def test_metadata_read_refuses_a_file_without_config(tmp_path):
    path = tmp_path / "plain.onnx"
    graph = onnx.helper.make_graph([], "g", [], [])
    onnx.save(onnx.helper.make_model(graph), str(path))
    with pytest.raises(ExportError, match=r"no edgercnn\.config"):
        metadata.read(path)
