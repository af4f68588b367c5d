"""The reference kernels of ``torch.ops.edgercnn.*`` against torchvision's own classes and ops."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
import torchvision
from edgercnn.export.ops import OpArgumentError, batched_nms, multi_level_roi_align, translation_table
from torchvision.ops.poolers import LevelMapper, MultiScaleRoIAlign

from tests.builders.op_inputs import IMAGE_HW, STRIDES, random_boxes, random_features, random_rois


def pool_by_torchvision_levels(rois, features, output_size, scales, sampling_ratio, aligned, mode, canonical):
    """torchvision's LevelMapper, then torchvision roi_align / roi_pool per level."""
    batch, count, _ = rois.shape
    flat = torch.cat([torch.arange(batch).repeat_interleave(count)[:, None].float(), rois.reshape(-1, 4)], 1)
    k_min = int(-torch.log2(torch.tensor(scales[0])).item())
    k_max = int(-torch.log2(torch.tensor(scales[-1])).item())
    levels = LevelMapper(k_min, k_max, canonical_scale=canonical)([rois.reshape(-1, 4)])
    out = torch.zeros(batch * count, features[0].shape[1], *output_size)
    for level, (feature, scale) in enumerate(zip(features, scales, strict=True)):
        rows = torch.where(levels == level)[0]
        if mode == "max":
            out[rows] = torchvision.ops.roi_pool(feature, flat[rows], output_size, scale)
        else:
            out[rows] = torchvision.ops.roi_align(
                feature, flat[rows], output_size, scale, sampling_ratio, aligned
            )
    return out.view(batch, count, *out.shape[1:])


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("levels", [1, 4, 5])
@pytest.mark.parametrize("sampling_ratio", [2, 0, -1])
@pytest.mark.parametrize("output_size", [(7, 7), (14, 10)])
def test_roi_align_matches_torchvision_multiscale_roi_align(batch, levels, sampling_ratio, output_size):
    features = random_features(batch, levels, seed=levels)
    rois = random_rois(batch, 60, seed=batch * 10 + levels)
    names = [str(i) for i in range(levels)]
    pooler = MultiScaleRoIAlign(names, output_size, sampling_ratio, canonical_scale=56)
    expected = pooler(OrderedDict(zip(names, features, strict=True)), list(rois), [IMAGE_HW] * batch)
    scales = [1.0 / s for s in STRIDES[:levels]]
    got = multi_level_roi_align(rois, features, output_size, scales, sampling_ratio, canonical_scale=56)
    assert got.shape == (batch, 60, 3, *output_size)
    torch.testing.assert_close(got.reshape(expected.shape), expected, rtol=0, atol=0)


def test_roi_align_default_canonical_scale_matches_torchvision_on_large_boxes():
    features = random_features(2, 4)
    rois = random_rois(2, 80, seed=3) * 4.0  # sizes up to ~1600 px reach every level at scale 224
    names = ["a", "b", "c", "d"]
    pooler = MultiScaleRoIAlign(names, 7, 2)
    expected = pooler(OrderedDict(zip(names, features, strict=True)), list(rois), [(256, 384)] * 2)
    features_big_image = features  # the same maps now stand for a 256x384 image at strides 16..128
    scales = [1 / 16, 1 / 32, 1 / 64, 1 / 128]
    got = multi_level_roi_align(rois, features_big_image, (7, 7), scales, 2)
    torch.testing.assert_close(got.reshape(expected.shape), expected, rtol=0, atol=0)


@pytest.mark.parametrize("levels", [1, 4])
@pytest.mark.parametrize("sampling_ratio", [2, 0])
def test_roi_align_aligned_matches_torchvision_level_mapper_and_roi_align(levels, sampling_ratio):
    features = random_features(3, levels)
    rois = random_rois(3, 50, seed=7, negative_area=levels > 1 or sampling_ratio > 0)
    scales = [1.0 / s for s in STRIDES[:levels]]
    got = multi_level_roi_align(
        rois, features, (7, 7), scales, sampling_ratio, aligned=True, canonical_scale=56
    )
    if levels == 1:
        flat = torch.cat([torch.arange(3).repeat_interleave(50)[:, None].float(), rois.reshape(-1, 4)], 1)
        expected = torchvision.ops.roi_align(features[0], flat, (7, 7), scales[0], sampling_ratio, True)
        expected = expected.view(got.shape)
    else:
        expected = pool_by_torchvision_levels(rois, features, (7, 7), scales, sampling_ratio, True, "avg", 56)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


@pytest.mark.parametrize("levels", [1, 4])
def test_roi_pool_mode_matches_torchvision_roi_pool(levels):
    features = random_features(2, levels, seed=11)
    rois = random_rois(2, 50, seed=12)
    scales = [1.0 / s for s in STRIDES[:levels]]
    got = multi_level_roi_align(rois, features, (7, 7), scales, 0, mode="max", canonical_scale=56)
    expected = pool_by_torchvision_levels(rois, features, (7, 7), scales, 0, False, "max", 56)
    if levels == 1:  # single level: every RoI from that level, as torchvision's single-level path
        flat = torch.cat([torch.arange(2).repeat_interleave(50)[:, None].float(), rois.reshape(-1, 4)], 1)
        expected = torchvision.ops.roi_pool(features[0], flat, (7, 7), scales[0]).view(got.shape)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_roi_align_with_no_rois_gives_empty_output():
    got = multi_level_roi_align(
        torch.zeros(2, 0, 4), random_features(2, 4), (7, 7), [1 / 4, 1 / 8, 1 / 16, 1 / 32], 2
    )
    assert got.shape == (2, 0, 3, 7, 7)


def test_roi_align_rejects_mismatched_levels_and_scales():
    with pytest.raises(OpArgumentError, match="one scale each"):
        multi_level_roi_align(torch.zeros(1, 2, 4), random_features(1, 2), (7, 7), [0.25], 2)


def test_roi_align_rejects_scales_that_are_not_power_of_two_strides():
    with pytest.raises(OpArgumentError, match="power-of-two"):
        multi_level_roi_align(torch.zeros(1, 2, 4), random_features(1, 2), (7, 7), [0.25, 0.1], 2)


def test_nms_rejects_bad_shapes_and_thresholds():
    boxes, scores, idxs = random_boxes(1, 10, seed=0)
    with pytest.raises(OpArgumentError, match=r"scores \[N, B\]"):
        batched_nms(boxes, scores[0], idxs, 0.5, 0.0, 5)
    with pytest.raises(OpArgumentError, match="iou_threshold"):
        batched_nms(boxes, scores, idxs, 1.5, 0.0, 5)


def test_translation_table_rejects_unknown_flavour():
    with pytest.raises(OpArgumentError, match="unknown ONNX flavour"):
        translation_table("openvino")


def torchvision_batched_nms(boxes, scores, idxs, iou, score_threshold, max_output, pre_nms_top_n):
    """The contract spelled with torchvision: threshold, stable top-n, batched_nms, truncate."""
    keeps = []
    for image in range(boxes.shape[0]):
        cand = torch.where(scores[image] > score_threshold)[0]
        if 0 <= pre_nms_top_n < cand.numel():
            best = torch.sort(scores[image, cand], descending=True, stable=True)[1][:pre_nms_top_n]
            cand = torch.sort(cand[best])[0]
        kept = torchvision.ops.batched_nms(boxes[image, cand], scores[image, cand], idxs[image, cand], iou)
        keeps.append(cand[kept][:max_output])
    return keeps


def assert_nms_matches(boxes, scores, idxs, iou, score_threshold, max_output, pre_nms_top_n=-1):
    keep, count = batched_nms(boxes, scores, idxs, iou, score_threshold, max_output, pre_nms_top_n)
    expected = torchvision_batched_nms(boxes, scores, idxs, iou, score_threshold, max_output, pre_nms_top_n)
    assert keep.shape == (boxes.shape[0], max_output) and keep.dtype == torch.int64
    for image, want in enumerate(expected):
        assert count[image].item() == want.numel()
        assert torch.equal(keep[image, : want.numel()], want)
        assert (keep[image, want.numel() :] == -1).all()


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("iou", [0.2, 0.5, 0.8])
def test_nms_matches_torchvision_batched_nms(batch, iou):
    boxes, scores, idxs = random_boxes(batch, 300, seed=int(iou * 10) + batch)
    assert_nms_matches(boxes, scores, idxs, iou, 0.05, 100)


def test_nms_keeps_torchvision_order_for_tied_scores():
    boxes, scores, idxs = random_boxes(2, 200, seed=5, ties=True)
    assert_nms_matches(boxes, scores, idxs, 0.5, 0.0, 200)


@pytest.mark.parametrize("pre_nms_top_n", [0, 10, 150, 1000])
def test_nms_pre_nms_top_n_takes_best_scores_over_all_classes(pre_nms_top_n):
    boxes, scores, idxs = random_boxes(3, 300, seed=9, ties=pre_nms_top_n == 150)
    assert_nms_matches(boxes, scores, idxs, 0.7, 0.1, 50, pre_nms_top_n)


def test_nms_image_without_candidates_gives_count_zero_and_padding():
    boxes, scores, idxs = random_boxes(3, 50, seed=2)
    scores[1] = -torch.inf  # masked image
    scores[2] = 0.01  # below threshold
    keep, count = batched_nms(boxes, scores, idxs, 0.5, 0.05, 20)
    assert count.tolist()[1:] == [0, 0] and (keep[1:] == -1).all()
    assert_nms_matches(boxes, scores, idxs, 0.5, 0.05, 20)


def test_nms_with_many_classes_and_large_coordinates():
    boxes, scores, idxs = random_boxes(1, 1000, seed=4, classes=90)
    assert_nms_matches(boxes * 10 + 5000, scores, idxs + 1, 0.5, 0.05, 100)
