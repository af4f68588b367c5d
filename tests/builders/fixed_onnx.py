"""Tiny hand-made ONNX models with the contract's IO and metadata, for runtime tests.

The graph returns fixed detections (given as arrays) plus ``0 * mean(images)`` so that the
output depends on the input and nothing is folded away; the runtime's job around it (metadata,
preprocessing, backend, postprocessing, sinks) is what the tests check.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def tiny_config(
    architecture: str = "maskrcnn",
    height: int = 96,
    width: int = 128,
    valid: tuple[int, int] | None = None,
    dtype: str = "float32",
    batch: int | str = 1,
    detections: int = 5,
    keypoint_output: str = "keypoint_heatmaps",
) -> dict[str, Any]:
    """A config of the current format; ``keypoint_output="keypoints"`` gives a format-1 keypoint file."""
    valid_h, valid_w = valid or (height, width)
    outputs = ["num_detections", "boxes", "scores", "labels"]
    if architecture == "maskrcnn":
        outputs.append("masks")
    if architecture == "keypointrcnn":
        outputs.append(keypoint_output)
    return {
        "format_version": 1 if keypoint_output == "keypoints" else 2,
        "architecture": architecture,
        "builder": "tiny_test",
        "class_names": ["__background__", "person", "car", "plate"],
        "keypoint_names": [f"kp{i}" for i in range(17)] if architecture == "keypointrcnn" else [],
        "input": {
            "name": "images",
            "dtype": dtype,
            "color": "RGB" if dtype == "float32" else "BGR",
            "height": height,
            "width": width,
            "valid_height": valid_h,
            "valid_width": valid_w,
            "source_height": valid_h,
            "source_width": valid_w,
            "min_size": min(valid_h, valid_w),
            "max_size": max(valid_h, valid_w),
            "size_divisible": 32,
            "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225],
        },
        "batch": batch,
        "outputs": outputs,
        "detections_per_img": detections,
        "thresholds": {"box_score_thresh": 0.05, "box_nms_thresh": 0.5},
        "mask_size": 28,
        "flavour": "portable",
        "precision": "fp32",
        "versions": {"edgercnn": "0.1.0"},
        "source": {},
    }


def tiny_outputs(config: dict[str, Any], count: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Plausible detections for a batch of one, rows past ``count`` are garbage on purpose."""
    rng = np.random.default_rng(seed)
    k = config["detections_per_img"]
    h, w = config["input"]["valid_height"], config["input"]["valid_width"]
    x1 = rng.uniform(0, w * 0.6, k)
    y1 = rng.uniform(0, h * 0.6, k)
    boxes = np.stack([x1, y1, x1 + rng.uniform(4, w * 0.4, k), y1 + rng.uniform(4, h * 0.4, k)], 1)
    boxes = np.minimum(boxes, [w, h, w, h]).astype(np.float32)[None]
    scores = np.sort(rng.uniform(0.1, 1.0, k))[::-1].astype(np.float32)[None]
    labels = rng.integers(1, len(config["class_names"]), k).astype(np.int64)[None]
    garbage = slice(count, k)
    boxes[0, garbage] = 1e6
    scores[0, garbage] = np.nan
    labels[0, garbage] = 9999
    out = {
        "num_detections": np.array([count], dtype=np.int64),
        "boxes": boxes,
        "scores": scores,
        "labels": labels,
    }
    if "masks" in config["outputs"]:
        yy, xx = np.mgrid[0:28, 0:28]
        blob = np.exp(-((yy - 13.5) ** 2 + (xx - 13.5) ** 2) / 60.0)
        out["masks"] = (blob[None, None] * rng.uniform(0.6, 1.0, (1, k, 1, 1))).astype(np.float32)
    if "keypoints" in config["outputs"]:
        kp = np.stack(
            [rng.uniform(0, w, (1, k, 17)), rng.uniform(0, h, (1, k, 17)), rng.normal(0, 3, (1, k, 17))], 3
        )
        out["keypoints"] = kp.astype(np.float32)
    if "keypoint_heatmaps" in config["outputs"]:
        out["keypoint_heatmaps"] = rng.normal(0, 1, (1, k, 17, 56, 56)).astype(np.float32)
    return out


def make_tiny_onnx(path: Path, config: dict[str, Any], outputs: dict[str, np.ndarray]) -> Path:
    """Write a graph that returns ``outputs`` (tiled over the batch) with ``config`` as metadata."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inp = config["input"]
    elem = TensorProto.FLOAT if inp["dtype"] == "float32" else TensorProto.UINT8
    batch_dim: int | str = "N" if config["batch"] == "dynamic" else int(config["batch"])
    nodes = [
        helper.make_node("Cast", ["images"], ["images_f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["images_f"], ["mean_all"], keepdims=0),
        helper.make_node("Mul", ["mean_all", "zero"], ["zero_dep"]),
        helper.make_node("Shape", ["images"], ["in_shape"]),
        helper.make_node("Slice", ["in_shape", "s0", "s1"], ["n_dim"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        numpy_helper.from_array(np.array([0], np.int64), "s0"),
        numpy_helper.from_array(np.array([1], np.int64), "s1"),
    ]
    graph_outputs = []
    for name, value in outputs.items():
        const = f"{name}_const"
        inits.append(numpy_helper.from_array(value, const))
        reps = np.ones(value.ndim - 1, np.int64)
        inits.append(numpy_helper.from_array(reps, f"{name}_reps_tail"))
        nodes.append(helper.make_node("Concat", ["n_dim", f"{name}_reps_tail"], [f"{name}_reps"], axis=0))
        nodes.append(helper.make_node("Tile", [const, f"{name}_reps"], [f"{name}_tiled"]))
        if value.dtype == np.float32:
            nodes.append(helper.make_node("Add", [f"{name}_tiled", "zero_dep"], [name]))
        else:
            nodes.append(helper.make_node("Identity", [f"{name}_tiled"], [name]))
        dtype = helper.np_dtype_to_tensor_dtype(value.dtype)
        graph_outputs.append(helper.make_tensor_value_info(name, dtype, [batch_dim, *value.shape[1:]]))
    graph = helper.make_graph(
        nodes,
        "tiny_rcnn",
        [helper.make_tensor_value_info("images", elem, [batch_dim, 3, inp["height"], inp["width"]])],
        graph_outputs,
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    helper.set_model_props(
        model,
        {"edgercnn.config": json.dumps(config), "edgercnn.format_version": str(config["format_version"])},
    )
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def identity_model() -> Any:
    """The smallest valid ONNX model (one Identity node): a carrier for ``metadata_props`` tests."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    return helper.make_model(graph)
