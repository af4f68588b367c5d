"""Reference kernels of the two data-dependent ops, on torchvision ops.

They define the numbers every other implementation (portable ONNX, TensorRT plugins, CPU custom
ops) is tested against, so they follow torchvision step by step rather than being fast.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torchvision
from edgercnn.runtime.contract import ROI_ALIGN_MODES

MODE_AVG = ROI_ALIGN_MODES["avg"]
MODE_MAX = ROI_ALIGN_MODES["max"]


def level_mapper(
    rois: torch.Tensor,
    spatial_scales: Sequence[float],
    canonical_scale: int,
    canonical_level: int,
    eps: float,
) -> torch.Tensor:
    """Level index per RoI, computed like torchvision's ``LevelMapper`` (same ops, in float32).

    ``rois`` is ``[..., 4]``; the result has shape ``rois.shape[:-1]`` and dtype int64.
    """
    k_min = round(-torch.log2(torch.tensor(spatial_scales[0], dtype=torch.float32)).item())
    k_max = round(-torch.log2(torch.tensor(spatial_scales[-1], dtype=torch.float32)).item())
    rois = rois.float()  # the contract computes levels in float32 (torchvision: in the boxes dtype)
    area = (rois[..., 2] - rois[..., 0]) * (rois[..., 3] - rois[..., 1])
    s = torch.sqrt(area)
    levels = torch.floor(canonical_level + torch.log2(s / canonical_scale) + torch.tensor(eps, dtype=s.dtype))
    levels = torch.clamp(levels, min=k_min, max=k_max)
    return levels.to(torch.int64) - k_min


def multi_level_roi_align_reference(
    rois: torch.Tensor,
    features: Sequence[torch.Tensor],
    output_height: int,
    output_width: int,
    spatial_scales: Sequence[float],
    sampling_ratio: int,
    aligned: bool,
    mode: int,
    canonical_scale: int,
    canonical_level: int,
    eps: float,
) -> torch.Tensor:
    """Pools every RoI of every image from its FPN level: ``[N, R, 4]`` -> ``[N, R, C, oh, ow]``."""
    n, r, _ = rois.shape
    c = features[0].shape[1]
    out = features[0].new_zeros((n * r, c, output_height, output_width))
    if n * r == 0:
        return out.view(n, r, c, output_height, output_width)
    batch_index = torch.arange(n, device=rois.device, dtype=rois.dtype).repeat_interleave(r)
    flat = torch.cat([batch_index[:, None], rois.reshape(n * r, 4)], dim=1)
    if len(features) == 1:
        levels = torch.zeros(n * r, dtype=torch.int64, device=rois.device)
    else:
        levels = level_mapper(flat[:, 1:], spatial_scales, canonical_scale, canonical_level, eps)
    for level, (feature, scale) in enumerate(zip(features, spatial_scales, strict=True)):
        rows = torch.where(levels == level)[0]
        if rows.numel() == 0:
            continue
        # float32 arithmetic for float16 I/O, as the contract asks (torchvision's CPU kernels would
        # accumulate in float16).
        feature32, rois32 = feature.float(), flat[rows].float()
        if mode == MODE_MAX:
            pooled = torchvision.ops.roi_pool(feature32, rois32, (output_height, output_width), scale)
        else:
            pooled = torchvision.ops.roi_align(
                feature32, rois32, (output_height, output_width), scale, sampling_ratio, aligned
            )
        out[rows] = pooled.to(out.dtype)
    return out.view(n, r, c, output_height, output_width)


def _candidates(scores: torch.Tensor, score_threshold: float, pre_nms_top_n: int) -> torch.Tensor:
    """Indices (ascending) of the boxes that enter NMS: above the threshold, then the best
    ``pre_nms_top_n`` by score (a stable sort, so ties go to the lower index)."""
    valid = torch.where(scores > score_threshold)[0]
    if 0 <= pre_nms_top_n < valid.numel():
        order = torch.sort(scores[valid], descending=True, stable=True)[1][:pre_nms_top_n]
        valid = torch.sort(valid[order])[0]
    return valid


def batched_nms_reference(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    idxs: torch.Tensor,
    iou_threshold: float,
    score_threshold: float,
    max_output: int,
    pre_nms_top_n: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: torchvision NMS per ``idxs`` value on the candidates, merged by decreasing score
    (ties: lower index first, the order torchvision's stable CPU ``nms`` gives), padded with -1."""
    n = boxes.shape[0]
    keep = torch.full((n, max_output), -1, dtype=torch.int64, device=boxes.device)
    count = torch.zeros((n,), dtype=torch.int64, device=boxes.device)
    for image in range(n):
        cand = _candidates(scores[image], score_threshold, pre_nms_top_n)
        if cand.numel() == 0:
            continue
        b, s, g = boxes[image, cand].float(), scores[image, cand].float(), idxs[image, cand]
        kept = []
        for value in torch.unique(g):
            members = torch.where(g == value)[0]
            kept.append(members[torchvision.ops.nms(b[members], s[members], iou_threshold)])
        survivors = torch.sort(torch.cat(kept))[0]
        order = torch.sort(s[survivors], descending=True, stable=True)[1]
        chosen = cand[survivors[order]][:max_output]
        keep[image, : chosen.numel()] = chosen
        count[image] = chosen.numel()
    return keep, count
