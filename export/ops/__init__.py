"""The deploy graph's two data-dependent ops as ``torch.ops.edgercnn.*`` custom ops.

The op contract is ``plugins/README.md`` (sections 1-2). Each op has a reference kernel on
torchvision ops and a fake kernel with static output shapes, so ``torch.export`` and
``torch.onnx.export(dynamo=True)`` trace through it; ``translation_table`` maps them to ONNX.
The Python wrappers below are the stable API used by the deploy graph.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from edgercnn.export.ops.arguments import Flavour, OpArgumentError
from edgercnn.export.ops.reference import batched_nms_reference, multi_level_roi_align_reference
from edgercnn.runtime.contract import BATCHED_NMS, MAX_LEVELS, ROI_ALIGN, ROI_ALIGN_MODES

__all__ = ["OpArgumentError", "batched_nms", "multi_level_roi_align", "translation_table"]


def _check_roi_align_args(rois, features, output_size, spatial_scales, mode) -> None:
    if not 1 <= len(features) <= MAX_LEVELS or len(features) != len(spatial_scales):
        raise OpArgumentError(
            f"multi_level_roi_align needs 1..{MAX_LEVELS} feature maps and one scale each, "
            f"got {len(features)} maps and {len(spatial_scales)} scales"
        )
    if mode not in ROI_ALIGN_MODES:
        raise OpArgumentError(f"multi_level_roi_align mode must be 'avg' or 'max', got {mode!r}")
    if rois.dim() != 3 or rois.shape[-1] != 4:
        raise OpArgumentError(f"multi_level_roi_align rois must be [N, R, 4], got {list(rois.shape)}")
    if len(output_size) != 2 or min(output_size) < 1:
        raise OpArgumentError(
            f"multi_level_roi_align output_size must be two positive ints, got {output_size}"
        )
    for scale in spatial_scales:
        if not 0 < scale <= 1 or math.log2(scale) != round(math.log2(scale)):
            raise OpArgumentError(
                f"multi_level_roi_align spatial_scales must be 1/stride with power-of-two strides, "
                f"got {list(spatial_scales)}"
            )


@torch.library.custom_op(ROI_ALIGN.torch_op, mutates_args=())
def _multi_level_roi_align_op(
    rois: torch.Tensor,
    features: list[torch.Tensor],
    output_height: int,
    output_width: int,
    spatial_scales: list[float],
    sampling_ratio: int,
    aligned: bool,
    mode: int,
    canonical_scale: int,
    canonical_level: int,
    eps: float,
) -> torch.Tensor:
    return multi_level_roi_align_reference(
        rois,
        features,
        output_height,
        output_width,
        spatial_scales,
        sampling_ratio,
        aligned,
        mode,
        canonical_scale,
        canonical_level,
        eps,
    )


@_multi_level_roi_align_op.register_fake
def _(
    rois,
    features,
    output_height,
    output_width,
    spatial_scales,
    sampling_ratio,
    aligned,
    mode,
    canonical_scale,
    canonical_level,
    eps,
):
    n, r, _ = rois.shape
    return features[0].new_empty((n, r, features[0].shape[1], output_height, output_width))


@torch.library.custom_op(BATCHED_NMS.torch_op, mutates_args=())
def _batched_nms_op(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    idxs: torch.Tensor,
    iou_threshold: float,
    score_threshold: float,
    max_output: int,
    pre_nms_top_n: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    return batched_nms_reference(
        boxes, scores, idxs, iou_threshold, score_threshold, max_output, pre_nms_top_n
    )


@_batched_nms_op.register_fake
def _(boxes, scores, idxs, iou_threshold, score_threshold, max_output, pre_nms_top_n):
    n = boxes.shape[0]
    return (
        boxes.new_empty((n, max_output), dtype=torch.int64),
        boxes.new_empty((n,), dtype=torch.int64),
    )


def multi_level_roi_align(
    rois: torch.Tensor,
    features: Sequence[torch.Tensor],
    output_size: tuple[int, int],
    spatial_scales: Sequence[float],
    sampling_ratio: int,
    aligned: bool = False,
    mode: str = "avg",
    canonical_scale: int = 224,
    canonical_level: int = 4,
    eps: float = 1e-6,
) -> torch.Tensor:
    """torchvision ``MultiScaleRoIAlign`` (or ``roi_pool`` with ``mode="max"``) on ``[N, R, 4]``
    boxes: returns ``[N, R, C, oh, ow]``, every row computed (padding rows give finite values)."""
    _check_roi_align_args(rois, features, output_size, spatial_scales, mode)
    return _multi_level_roi_align_op(
        rois,
        list(features),
        int(output_size[0]),
        int(output_size[1]),
        [float(s) for s in spatial_scales],
        int(sampling_ratio),
        bool(aligned),
        ROI_ALIGN_MODES[mode],
        int(canonical_scale),
        int(canonical_level),
        float(eps),
    )


def batched_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    idxs: torch.Tensor,
    iou_threshold: float,
    score_threshold: float,
    max_output: int,
    pre_nms_top_n: int = -1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image ``torchvision.ops.batched_nms`` on the boxes scoring above ``score_threshold``
    (and among the ``pre_nms_top_n`` best): ``keep [N, max_output]`` int64 indices into ``B`` by
    decreasing score, padded with -1, and ``count [N]`` int64."""
    if (
        boxes.dim() != 3
        or boxes.shape[-1] != 4
        or scores.shape != boxes.shape[:2]
        or idxs.shape != scores.shape
    ):
        raise OpArgumentError(
            "batched_nms needs boxes [N, B, 4], scores [N, B], idxs [N, B]; got "
            f"{list(boxes.shape)}, {list(scores.shape)}, {list(idxs.shape)}"
        )
    if not 0.0 <= iou_threshold <= 1.0:
        raise OpArgumentError(f"batched_nms iou_threshold must be in [0, 1], got {iou_threshold}")
    if max_output < 1:
        raise OpArgumentError(f"batched_nms max_output must be at least 1, got {max_output}")
    if idxs.dtype != torch.int64:
        idxs = idxs.to(torch.int64)
    return _batched_nms_op(
        boxes,
        scores,
        idxs,
        float(iou_threshold),
        float(score_threshold),
        int(max_output),
        int(pre_nms_top_n),
    )


def translation_table(flavour: Flavour) -> dict:
    """ONNX translations of both ops for ``torch.onnx.export(dynamo=True, custom_translation_table=...)``."""
    from edgercnn.export.ops.onnx_translation import build_translation_table

    return build_translation_table(flavour)
