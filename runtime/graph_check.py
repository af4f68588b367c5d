"""The model config checked against the graph it travels with, once, when a model is opened.

A config that contradicts its graph (another input dtype or size, an output the graph lacks, a
class list shorter than the labels it gives) used to open fine and then give zero detections,
unnamed labels, missing masks or an onnxruntime traceback on the first frame. The backends
describe their graph's inputs and outputs (:class:`TensorSpec`); this compares them with the
config (ONNX metadata, or an engine's sidecar) and says the first difference in one line that
names the file, the key, both values and the command that fixes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from .contract import ENGINE_SUFFIXES, REEXPORT_HINT, ModelConfig
from .errors import ModelFormatError


class GraphTensor(Protocol):
    """What a backend says of one graph input or output (``backends.base.TensorSpec``)."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str


REBUILD_HINT = "rebuild the engine with 'edgercnn build' from the ONNX it came from"


def fix_hint(path: Path) -> str:
    """What makes config and graph agree again: a new export, or for an engine a new build."""
    return REBUILD_HINT if path.suffix in ENGINE_SUFFIXES else REEXPORT_HINT


def mismatch(path: Path, key: str, config_value: object, graph_value: object) -> ModelFormatError:
    return ModelFormatError(
        f"{path}: model config {key} is {config_value!r} but the graph has {graph_value!r}; {fix_hint(path)}"
    )


def check_config_against_graph(
    config: ModelConfig, inputs: Sequence[GraphTensor], outputs: Sequence[GraphTensor], path: Path
) -> None:
    """``inputs``/``outputs`` are the backend's ``TensorSpec`` lists (name, shape, numpy dtype)."""
    if not inputs:
        raise ModelFormatError(f"{path}: the graph has no input; {fix_hint(path)}")
    spec = next((t for t in inputs if t.name == config.input.name), None)
    if spec is None:
        raise mismatch(path, "input.name", config.input.name, [t.name for t in inputs])
    if np.dtype(spec.dtype) != np.dtype(config.input.dtype):
        raise mismatch(path, "input.dtype", config.input.dtype, str(np.dtype(spec.dtype)))
    shape = tuple(spec.shape)
    if len(shape) != 4:
        raise mismatch(path, "input shape (N, 3, H, W)", "4 axes", list(shape))
    for key, want, have in (
        ("input channels", 3, shape[1]),
        ("input.height", config.input.height, shape[2]),
        ("input.width", config.input.width, shape[3]),
    ):
        if have is not None and have != want:
            raise mismatch(path, key, want, have)
    if config.batch is not None and shape[0] is not None and shape[0] != config.batch:
        raise mismatch(path, "batch", config.batch, shape[0])
    by_name = {t.name: t for t in outputs}
    missing = [name for name in config.outputs if name not in by_name]
    if missing:
        raise mismatch(path, "outputs", list(config.outputs), sorted(by_name))
    _check_output_shapes(config, by_name, path)


def _check_output_shapes(config: ModelConfig, by_name: dict[str, GraphTensor], path: Path) -> None:
    """Detections per image, mask size and keypoint count, where the graph fixes them."""
    boxes = tuple(by_name["boxes"].shape)
    if len(boxes) == 3 and boxes[1] is not None and boxes[1] != config.detections_per_img:
        raise mismatch(path, "detections_per_img", config.detections_per_img, boxes[1])
    if "masks" in by_name and config.has_masks:
        masks = tuple(by_name["masks"].shape)
        if len(masks) == 4 and masks[2] is not None and masks[2] != config.mask_size:
            raise mismatch(path, "mask_size", config.mask_size, masks[2])
    for name, rank in (("keypoints", 4), ("keypoint_heatmaps", 5)):  # [N, K, P, 3] or [N, K, P, S, S]
        if name in by_name and config.has_keypoints and config.num_keypoints is not None:
            points = tuple(by_name[name].shape)
            if len(points) == rank and points[2] is not None and points[2] != config.num_keypoints:
                raise mismatch(path, "num_keypoints", config.num_keypoints, points[2])


def check_labels(labels: np.ndarray, config: ModelConfig) -> None:
    """Labels the graph gave are all named by ``class_names`` (a shorter list names none of them)."""
    if labels.size and int(labels.max()) >= len(config.class_names):
        raise ModelFormatError(
            f"{config.path}: model config class_names has {len(config.class_names)} names but the graph "
            f"gave label {int(labels.max())}; {fix_hint(config.path)}"
        )
