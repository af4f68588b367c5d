"""The model's configuration as it travels inside the ONNX file (docs/model-format.md).

One ``metadata_props`` key, ``edgercnn.config``, holds everything the runtime needs as JSON, plus
``edgercnn.format_version``. The runtime reads it back and needs nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import onnx
import torch
import torchvision
from edgercnn.export.deploy import DeployRCNN
from edgercnn.export.deploy.errors import ExportError
from edgercnn.runtime.contract import (
    CONFIG_KEY,
    DYNAMIC_BATCH,
    FORMAT_KEY,
    FORMAT_VERSION,
    INPUT_COLORS,
    INPUT_NAME,
    MASK_SIZE,
    InputSpec,
    Kind,
    ModelConfig,
)

import edgercnn


def default_class_names(num_classes: int) -> list[str]:
    """``__background__`` then ``class_1 .. class_{n-1}`` when the user gave no names."""
    return ["__background__"] + [f"class_{i}" for i in range(1, num_classes)]


def build_config(
    deploy: DeployRCNN,
    *,
    builder: str,
    class_names: list[str],
    keypoint_names: list[str] | None = None,
    batch: int | str = 1,
    flavour: str = "portable",
    precision: str = "fp32",
    opset: int = 18,
    checkpoint: str | None = None,
    checkpoint_sha256: str | None = None,
) -> dict[str, Any]:
    """The ``edgercnn.config`` dictionary for one exported file, built through the contract's
    ``ModelConfig`` so that it is exactly what the runtime's ``ModelConfig.from_dict`` reads."""
    if len(class_names) != deploy.num_classes:
        raise ExportError(
            f"{len(class_names)} class names given but the model has {deploy.num_classes} classes "
            "(counting __background__ at index 0)"
        )
    g = deploy.geometry
    box = deploy.box_head
    config = ModelConfig(
        path=Path("<export>"),
        architecture=deploy.kind,
        builder=builder,
        class_names=tuple(class_names),
        keypoint_names=tuple(keypoint_names or ()),
        input=InputSpec(
            name=INPUT_NAME,
            dtype=deploy.options.input_dtype,
            color=INPUT_COLORS[deploy.options.input_dtype],
            height=g.height,
            width=g.width,
            valid_height=g.valid_height,
            valid_width=g.valid_width,
            source_height=g.source_height,
            source_width=g.source_width,
            min_size=g.min_size,
            max_size=g.max_size,
            size_divisible=g.size_divisible,
            mean=tuple(deploy.mean),  # type: ignore[arg-type]
            std=tuple(deploy.std),  # type: ignore[arg-type]
        ),
        batch=None if batch == DYNAMIC_BATCH else int(batch),
        outputs=tuple(deploy.output_names),
        detections_per_img=box.detections_per_img,
        thresholds=_thresholds(deploy),
        proposals=deploy.options.proposals,
        max_proposals=deploy.options.max_proposals if deploy.external_proposals else None,
        roi_op=deploy.options.roi_op,
        flavour=flavour,
        precision=precision,
        versions={
            "edgercnn": edgercnn.__version__,
            "torch": torch.__version__.split("+")[0],
            "torchvision": torchvision.__version__.split("+")[0],
            "onnx": onnx.__version__,
            "opset": opset,
        },
        source={"checkpoint": checkpoint, "checkpoint_sha256": checkpoint_sha256},
        mask_size=MASK_SIZE,
        num_keypoints=deploy.num_keypoints if deploy.kind == Kind.KEYPOINTRCNN else None,
    )
    return config.to_dict()


def _thresholds(deploy: DeployRCNN) -> dict[str, float]:
    """The box head's thresholds, and the RPN's when the graph has one (Fast R-CNN mode has none)."""
    box, rpn = deploy.box_head, deploy.rpn
    values: dict[str, float] = {"box_score_thresh": box.score_thresh, "box_nms_thresh": box.nms_thresh}
    if rpn is not None:
        values.update(
            rpn_pre_nms_top_n=rpn.pre_nms_top_n,
            rpn_post_nms_top_n=rpn.post_nms_top_n,
            rpn_nms_thresh=rpn.nms_thresh,
            rpn_score_thresh=rpn.score_thresh,
        )
    return values


def attach(model: onnx.ModelProto, config: dict[str, Any]) -> None:
    """Write the config into ``model.metadata_props`` (replacing earlier edgercnn keys)."""
    keep = [p for p in model.metadata_props if p.key not in (CONFIG_KEY, FORMAT_KEY)]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key, value in ((CONFIG_KEY, json.dumps(config, sort_keys=False)), (FORMAT_KEY, str(FORMAT_VERSION))):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def read(path_or_model: str | Path | onnx.ModelProto) -> dict[str, Any]:
    """The ``edgercnn.config`` of an ONNX file or model; ``ExportError`` when it has none."""
    if isinstance(path_or_model, onnx.ModelProto):
        model, name = path_or_model, "model"
    else:
        model, name = onnx.load(str(path_or_model), load_external_data=False), str(path_or_model)
    props = {p.key: p.value for p in model.metadata_props}
    if CONFIG_KEY not in props:
        raise ExportError(f"{name}: no {CONFIG_KEY} metadata; re-export it with 'edgercnn export'")
    return json.loads(props[CONFIG_KEY])
