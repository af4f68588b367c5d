"""Tiny detection-shaped ONNX models and image sets for the INT8 / FP16 / eval tests.

Built with ``onnx.helper`` (no torch, milliseconds): a small conv trunk with a residual Add and
an upsampling path (the ops of a backbone + FPN), prediction convs for objectness and box
deltas, box decoding arithmetic, TopK and Gather, and the model-format outputs and metadata, so
the quantizer's choices (what becomes int8, what stays float) are exercised on the real op mix.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SIZE = 64
TOPK = 16
CLASS_NAMES = ["__background__", "thing"]


def model_config(
    size: int = SIZE, outputs: tuple[str, ...] = ("num_detections", "boxes", "scores", "labels")
):
    return {
        "format_version": 1,
        "architecture": "fasterrcnn",
        "builder": "tiny_test",
        "class_names": CLASS_NAMES,
        "keypoint_names": [],
        "input": {
            "name": "images", "dtype": "float32", "color": "RGB", "height": size, "width": size,
            "valid_height": size, "valid_width": size, "source_height": size, "source_width": size,
            "min_size": size, "max_size": size, "size_divisible": 32,
            "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
        },
        "batch": 1,
        "outputs": list(outputs),
        "detections_per_img": TOPK,
        "thresholds": {"box_score_thresh": 0.05},
        "flavour": "portable",
        "precision": "fp32",
    }  # fmt: skip


def _init(name: str, array: np.ndarray) -> TensorProto:
    return numpy_helper.from_array(np.ascontiguousarray(array), name)


def tiny_detector(path: Path, seed: int = 0) -> Path:
    """A 64x64 single-class 'detector' whose boxes and scores depend on every conv layer."""
    rng = np.random.default_rng(seed)
    cells = (SIZE // 4) ** 2
    nodes, inits = [], []

    def conv(
        name: str, x: str, cin: int, cout: int, k: int, stride: int = 1, relu: bool = True, gain: float = 1.0
    ) -> str:
        w = gain * rng.normal(0, np.sqrt(2.0 / (cin * k * k)), (cout, cin, k, k)).astype(np.float32)
        b = rng.normal(0, 0.05, cout).astype(np.float32)
        inits.extend([_init(f"{name}.w", w), _init(f"{name}.b", b)])
        pad = k // 2
        nodes.append(
            helper.make_node("Conv", [x, f"{name}.w", f"{name}.b"], [f"{name}.out"], name=name,
                             kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4)
        )  # fmt: skip
        if not relu:
            return f"{name}.out"
        nodes.append(helper.make_node("Relu", [f"{name}.out"], [f"{name}.relu"], name=f"{name}_relu"))
        return f"{name}.relu"

    x = conv("stem", "images", 3, 8, 3, stride=2)  # 32x32
    y = conv("block_a", x, 8, 8, 3)
    y = conv("block_b", y, 8, 8, 3, relu=False)
    nodes.append(helper.make_node("Add", [y, x], ["res.out"], name="res_add"))
    nodes.append(helper.make_node("Relu", ["res.out"], ["res.relu"], name="res_relu"))
    c4 = conv("down", "res.relu", 8, 16, 3, stride=2)  # 16x16
    lateral = conv("lateral", c4, 16, 8, 1, relu=False)
    inits.append(_init("up.scales", np.array([1, 1, 0.5, 0.5], np.float32)))
    nodes.append(
        helper.make_node("Resize", ["res.relu", "", "up.scales"], ["up.out"], name="up", mode="nearest")
    )
    nodes.append(helper.make_node("Add", [lateral, "up.out"], ["fpn.out"], name="fpn_add"))
    feat = conv("head", "fpn.out", 8, 8, 3)
    logits = conv("cls_logits", feat, 8, 1, 1, relu=False, gain=4.0)  # spread scores: few near-ties
    deltas = conv("bbox_pred", feat, 8, 4, 1, relu=False, gain=0.2)  # small deltas: boxes stay in the image

    # Box decoding: centre of each 4x4 cell + deltas * 4 px, half size 6 px * exp(clipped delta).
    ys, xs = np.meshgrid(np.arange(SIZE // 4), np.arange(SIZE // 4), indexing="ij")
    centres = np.stack([xs.ravel() * 4 + 2, ys.ravel() * 4 + 2], axis=1).astype(np.float32)[None]
    inits += [
        _init("centres", centres), _init("four", np.array(4.0, np.float32)),
        _init("six", np.array(6.0, np.float32)), _init("shape_scores", np.array([1, cells], np.int64)),
        _init("shape_deltas", np.array([1, 4, cells], np.int64)),
        _init("k", np.array([TOPK], np.int64)), _init("lo", np.array(0.0, np.float32)),
        _init("hi", np.array(float(SIZE), np.float32)), _init("clip", np.array(2.0, np.float32)),
        _init("neg_clip", np.array(-2.0, np.float32)), _init("thresh", np.array(0.05, np.float32)),
        _init("ones_labels", np.ones((1, TOPK), np.int64)),
        _init("split2", np.array([2, 2], np.int64)), _init("axis1", np.array([1], np.int64)),
    ]  # fmt: skip
    nodes += [
        helper.make_node("Reshape", [logits, "shape_scores"], ["flat_logits"], name="flat_logits"),
        helper.make_node("Sigmoid", ["flat_logits"], ["all_scores"], name="sigmoid"),
        helper.make_node("Reshape", [deltas, "shape_deltas"], ["d3"], name="d3"),
        helper.make_node("Transpose", ["d3"], ["dt"], name="dt", perm=[0, 2, 1]),
        helper.make_node("Split", ["dt", "split2"], ["dxy", "dwh"], name="split", axis=2),
        helper.make_node("Mul", ["dxy", "four"], ["dxy4"], name="dxy4"),
        helper.make_node("Add", ["centres", "dxy4"], ["ctr"], name="ctr"),
        helper.make_node("Clip", ["dwh", "neg_clip", "clip"], ["dwh_c"], name="dwh_c"),
        helper.make_node("Exp", ["dwh_c"], ["ewh"], name="ewh"),
        helper.make_node("Mul", ["ewh", "six"], ["half"], name="half"),
        helper.make_node("Sub", ["ctr", "half"], ["p1"], name="p1"),
        helper.make_node("Add", ["ctr", "half"], ["p2"], name="p2"),
        helper.make_node("Concat", ["p1", "p2"], ["raw_boxes"], name="raw_boxes", axis=2),
        helper.make_node("Clip", ["raw_boxes", "lo", "hi"], ["all_boxes"], name="clip_boxes"),
        helper.make_node("TopK", ["all_scores", "k"], ["scores", "top_idx"], name="topk", axis=1),
        helper.make_node("Squeeze", ["top_idx"], ["idx1"], name="idx1"),
        helper.make_node("Gather", ["all_boxes", "idx1"], ["boxes"], name="gather_boxes", axis=1),
        helper.make_node("Greater", ["scores", "thresh"], ["valid"], name="valid"),
        helper.make_node("Cast", ["valid"], ["valid_i"], name="valid_i", to=TensorProto.INT64),
        helper.make_node("ReduceSum", ["valid_i", "axis1"], ["num_detections"], name="count", keepdims=0),
        helper.make_node("Identity", ["ones_labels"], ["labels"], name="labels"),
    ]
    # Squeeze drops the batch axis of [1, K] indices: Gather on axis 1 then keeps [1, K, 4].
    graph = helper.make_graph(
        nodes, "tiny_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [
            helper.make_tensor_value_info("num_detections", TensorProto.INT64, [1]),
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, TOPK, 4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, TOPK]),
            helper.make_tensor_value_info("labels", TensorProto.INT64, [1, TOPK]),
        ],
        inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(
        model, {"edgercnn.config": json.dumps(model_config()), "edgercnn.format_version": "1"}
    )
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def scene_image(rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """A BGR image with a few filled rectangles on a gradient: structured, not noise."""
    grad = np.linspace(40, 200, size, dtype=np.float32)
    image = np.stack([np.add.outer(grad, grad) / 2] * 3, axis=-1).astype(np.uint8)
    for _ in range(3):
        x1, y1 = rng.integers(0, size - 16, 2)
        w, h = rng.integers(8, 16, 2)
        colour = [int(c) for c in rng.integers(0, 256, 3)]
        cv2.rectangle(image, (int(x1), int(y1)), (int(x1 + w), int(y1 + h)), colour, -1)
    return image


def write_images(folder: Path, count: int, seed: int = 0, size: int = SIZE) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = folder / f"img_{i:03d}.png"
        cv2.imwrite(str(path), scene_image(rng, size))
        paths.append(path)
    return paths
