"""Small inputs for the engine tests: a model config, an ONNX file carrying it, a sidecar."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgercnn.runtime.backends.tensorrt.sidecar import EngineInfo, GpuInfo, TensorInfo


def model_config(
    precision: str = "fp32", batch: int | str = 1, height: int = 64, width: int = 96
) -> dict[str, Any]:
    """A config as docs/model-format.md specifies it (what 'edgercnn export' writes)."""
    return {
        "format_version": 1,
        "architecture": "maskrcnn",
        "builder": "ref_maskrcnn",
        "class_names": ["__background__", "person", "car", "plate"],
        "keypoint_names": [],
        "input": {
            "name": "images",
            "dtype": "float32",
            "color": "RGB",
            "height": height,
            "width": width,
            "valid_height": height,
            "valid_width": width,
            "source_height": height,
            "source_width": width,
            "min_size": height,
            "max_size": width,
            "size_divisible": 32,
            "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225],
        },
        "batch": batch,
        "outputs": ["num_detections", "boxes", "scores", "labels", "masks"],
        "detections_per_img": 10,
        "thresholds": {"box_score_thresh": 0.05},
        "mask_size": 28,
        "flavour": "tensorrt",
        "precision": precision,
        "versions": {"edgercnn": "0.1.0"},
        "source": {"checkpoint": "models/ref_maskrcnn.pth", "checkpoint_sha256": "0" * 64},
    }


def write_onnx(path: Path, config: dict[str, Any] | None, batch: int | None = 1) -> Path:
    """An Identity graph with the image input and the metadata the engine builder reads."""
    import onnx
    from onnx import TensorProto, helper

    dims: list[int | str] = [batch if batch is not None else "N", 3, 64, 96]
    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, dims)
    out = helper.make_tensor_value_info("boxes", TensorProto.FLOAT, dims)
    graph = helper.make_graph(
        [helper.make_node("Identity", ["images"], ["boxes"], name="id0")], "g", [inp], [out]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    if config is not None:
        helper.set_model_props(model, {"edgercnn.config": json.dumps(config), "edgercnn.format_version": "1"})
    onnx.save(model, str(path))
    return path


def engine_info(**changes: Any) -> EngineInfo:
    fields: dict[str, Any] = {
        "sidecar_version": 1,
        "engine_file": "model.fp16.engine",
        "engine_sha256": "a" * 64,
        "tensorrt_version": "10.3.0.30",
        "gpu": GpuInfo("Orin", "8.7"),
        "precision": "fp16",
        "strategy": "weakly-typed",
        "onnx_file": "model.trt.onnx",
        "onnx_sha256": "b" * 64,
        "plugin_library": "/opt/edgercnn/libedgercnn_plugins.so",
        "plugin_sha256": "c" * 64,
        "inputs": [
            TensorInfo(
                "images",
                "FLOAT",
                [-1, 3, 64, 96],
                {"min": [1, 3, 64, 96], "opt": [2, 3, 64, 96], "max": [4, 3, 64, 96]},
            )
        ],
        "outputs": [TensorInfo("boxes", "FLOAT", [-1, 10, 4])],
        "build_command": "edgercnn build model.trt.onnx --engine model.fp16.engine --precision fp16",
    }
    fields.update(changes)
    return EngineInfo(**fields)
