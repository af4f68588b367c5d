"""The TensorRT-flavour ONNX on onnxruntime (runtime.plugin_ops.create_session): plugin nodes run on
the CPU kernels. Checked against torchvision's ops and against the portable flavour of the same graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from edgercnn.runtime.errors import ModelFormatError
from edgercnn.runtime.plugin_ops import create_session
from onnx import TensorProto, helper

from tests.plugins.test_plugins_cpu import (
    STRIDES,
    batched_reference,
    level_reference,
    make_features,
    make_rois,
)

R, C, K, B = 24, 3, 12, 60
SCALES = [1.0 / s for s in STRIDES[:4]]


def plugin_graph(float_type: int, idx_type: int) -> onnx.ModelProto:
    """rois + 4 feature maps -> RoIAlign plugin, boxes/scores/idxs -> NMS plugin, as exported."""
    f = [
        helper.make_tensor_value_info(f"f{i}", float_type, [2, C, 96 // s, 128 // s])
        for i, s in enumerate(STRIDES[:4])
    ]
    inputs = [
        helper.make_tensor_value_info("rois", float_type, [2, R, 4]),
        *f,
        helper.make_tensor_value_info("boxes", float_type, [2, B, 4]),
        helper.make_tensor_value_info("scores", float_type, [2, B]),
        helper.make_tensor_value_info("idxs", idx_type, [2, B]),
    ]
    plugin = {"plugin_version": "1", "plugin_namespace": "edgercnn"}
    roi = helper.make_node(
        "EdgeRCNN_MultiLevelRoIAlign",
        ["rois", "f0", "f1", "f2", "f3"],
        ["pooled"],
        domain="trt.plugins",
        output_height=5,
        output_width=5,
        spatial_scales=SCALES,
        sampling_ratio=0,
        aligned=1,
        mode=0,
        canonical_scale=224,
        canonical_level=4,
        eps=1e-6,
        **plugin,
    )
    nms = helper.make_node(
        "EdgeRCNN_BatchedNMS",
        ["boxes", "scores", "idxs"],
        ["keep", "count"],
        domain="trt.plugins",
        iou_threshold=0.5,
        score_threshold=0.1,
        max_output=K,
        pre_nms_top_n=40,
        **plugin,
    )
    outputs = [
        helper.make_tensor_value_info("pooled", float_type, [2, R, C, 5, 5]),
        helper.make_tensor_value_info("keep", TensorProto.INT64, [2, K]),
        helper.make_tensor_value_info("count", TensorProto.INT64, [2]),
    ]
    graph = helper.make_graph([roi, nms], "plugins", inputs, outputs)
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("trt.plugins", 1)]
    )


def feeds(float_dtype, idx_dtype) -> dict[str, np.ndarray]:
    g = torch.Generator().manual_seed(0)
    features = make_features(4, 2, C, seed=1)
    xy = torch.rand(2, B, 2, generator=g) * 100
    boxes = torch.cat([xy, xy + torch.rand(2, B, 2, generator=g) * 40 + 1], dim=-1).round()
    out = {"rois": make_rois(2, R, seed=2).numpy()}
    out.update({f"f{i}": f.numpy() for i, f in enumerate(features)})
    out.update(boxes=boxes.numpy(), scores=torch.rand(2, B, generator=g).numpy())
    out = {k: v.astype(float_dtype) for k, v in out.items()}
    out["idxs"] = torch.randint(0, 3, (2, B), generator=g).numpy().astype(idx_dtype)
    return out


@pytest.mark.parametrize(
    ("float_type", "float_dtype", "idx_type", "idx_dtype", "atol"),
    [
        (TensorProto.FLOAT, np.float32, TensorProto.INT64, np.int64, 1e-5),
        (TensorProto.FLOAT16, np.float16, TensorProto.INT32, np.int32, 4e-3),
    ],
    ids=["float32-int64", "float16-int32"],
)
def test_plugin_nodes_run_on_onnxruntime_like_torchvision(
    tmp_path, float_type, float_dtype, idx_type, idx_dtype, atol
):
    path = tmp_path / "plugins.trt.onnx"
    onnx.save(plugin_graph(float_type, idx_type), str(path))
    session = create_session(path)
    data = feeds(float_dtype, idx_dtype)
    pooled, keep, count = session.run(None, data)
    assert pooled.dtype == float_dtype and keep.dtype == count.dtype == np.int64
    t = {k: torch.from_numpy(v.astype(np.float32) if v.dtype == np.float16 else v) for k, v in data.items()}
    expected = level_reference(t["rois"], [t[f"f{i}"] for i in range(4)], 5, 0, True, 0)
    np.testing.assert_allclose(pooled.astype(np.float32), expected.numpy(), rtol=0, atol=atol)
    for n in range(2):
        ref = batched_reference(t["boxes"][n], t["scores"][n], t["idxs"][n].long(), 0.5, 0.1, K, 40)
        assert count[n] == len(ref)
        np.testing.assert_array_equal(keep[n, : count[n]], ref)
        assert (keep[n, count[n] :] == -1).all()


def test_tensorrt_flavour_matches_portable_flavour_of_the_same_ops(tmp_path):
    from tests.export.ops.test_ops_onnx import BothOpsModule, export_onnx
    from tests.export.ops.test_ops_reference import random_boxes, random_features, random_rois

    rois = random_rois(2, 40)
    _, scores, idxs = random_boxes(2, 40, seed=1)
    example = (rois, scores, idxs, *random_features(2, 4))
    for flavour in ("portable", "tensorrt"):
        export_onnx(BothOpsModule(), example, flavour, tmp_path / f"{flavour}.onnx", 3)
    names = [i.name for i in onnx.load(str(tmp_path / "portable.onnx")).graph.input]
    feed = dict(zip(names, [t.numpy() for t in example], strict=True))
    portable = create_session(tmp_path / "portable.onnx").run(None, feed)
    trt = create_session(tmp_path / "tensorrt.onnx").run(None, feed)
    np.testing.assert_allclose(trt[0], portable[0], rtol=0, atol=1e-5)
    np.testing.assert_array_equal(trt[2], portable[2])
    for n in range(2):
        np.testing.assert_array_equal(trt[1][n, : trt[2][n]], portable[1][n, : portable[2][n]])


def test_create_session_names_a_missing_file(tmp_path):
    with pytest.raises(ModelFormatError, match=r"missing\.onnx"):
        create_session(Path(tmp_path) / "missing.onnx")


def test_create_session_names_a_corrupt_file(tmp_path):
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(b"not an onnx file")
    with pytest.raises(ModelFormatError, match=r"corrupt\.onnx"):
        create_session(path)


def test_reference_mask_rcnn_tensorrt_flavour_gives_the_portable_detections(tmp_path):
    """A whole (random-weight) reference Mask R-CNN: plugin nodes on the CPU kernels vs standard ONNX ops."""
    from edgercnn.export.deploy.model import DeployOptions, DeployRCNN
    from edgercnn.export.onnx_export import check_and_infer, trace_to_onnx
    from edgercnn.export.refmodels.architectures import build_model

    torch.manual_seed(0)
    model = build_model("ref_maskrcnn", 4).eval()
    model.roi_heads.score_thresh = 0.0  # random weights: keep every detection so there is much to compare
    deploy = DeployRCNN(model, DeployOptions(96, 128)).eval()
    image = np.random.default_rng(0).standard_normal((1, *deploy.input_shape)).astype(np.float32)
    outputs = {}
    for flavour in ("portable", "tensorrt"):
        path = tmp_path / f"{flavour}.onnx"
        onnx.save(check_and_infer(trace_to_onnx(deploy, flavour, 1)), str(path))
        session = create_session(path)
        outputs[flavour] = session.run(None, {session.get_inputs()[0].name: image})
    portable, trt = outputs["portable"], outputs["tensorrt"]
    assert portable[0][0] > 0
    np.testing.assert_array_equal(trt[0], portable[0])
    count = int(portable[0][0])
    for a, b in zip(portable[1:], trt[1:], strict=True):
        np.testing.assert_allclose(
            b[0, :count].astype(np.float64), a[0, :count].astype(np.float64), atol=1e-4
        )
