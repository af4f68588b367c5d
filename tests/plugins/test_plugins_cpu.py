"""CPU plugin kernels (plugins/src/cpu via runtime.plugin_ops, ctypes) against torchvision's ops.

Reference: torchvision's roi_align / roi_pool / MultiScaleRoIAlign / nms / batched_nms on the CPU.
Randomized cases include degenerate (zero-size and inverted) and out-of-image boxes, 1-5 levels,
score ties and empty inputs. RoIAlign must agree to 1e-5, NMS indices exactly.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from edgercnn.runtime.plugin_ops import CpuKernels, PluginOpsError, load_cpu_kernels
from torchvision.ops import MultiScaleRoIAlign, batched_nms, nms, roi_align, roi_pool
from torchvision.ops.poolers import initLevelMapper

IMAGE_HW = (96, 128)
STRIDES = (4, 8, 16, 32, 64)
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def kernels() -> CpuKernels:
    return load_cpu_kernels()


def make_features(levels: int, batch: int, channels: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(batch, channels, IMAGE_HW[0] // s, IMAGE_HW[1] // s, generator=g)
        for s in STRIDES[:levels]
    ]


def make_rois(batch: int, count: int, seed: int) -> torch.Tensor:
    """Boxes of all sizes, partly outside the image, plus degenerate, inverted and boundary-size boxes."""
    g = torch.Generator().manual_seed(seed)
    h, w = IMAGE_HW
    xy = torch.rand(batch, count, 2, generator=g) * torch.tensor([w + 40.0, h + 40.0]) - 20.0
    wh = torch.rand(batch, count, 2, generator=g) ** 2 * torch.tensor([1.5 * w, 1.5 * h])
    rois = torch.cat([xy, xy + wh], dim=-1)
    special = torch.tensor(
        [
            [10.0, 10.0, 10.0, 10.0],  # zero size
            [30.0, 20.0, 30.0, 60.0],  # zero width
            [50.0, 40.0, 20.0, 60.0],  # inverted x: negative area, no level
            [50.0, 60.0, 20.0, 40.0],  # inverted x and y: positive area
            [-60.0, -60.0, -30.0, -30.0],  # fully outside
            [0.0, 0.0, 112.0, 112.0],  # canonical boundaries: sqrt(area) 112, 224/2
            [0.0, 0.0, 56.0, 56.0],
            [3.5, 7.25, 31.75, 9.5],  # thin
            [0.0, 0.0, float(w), float(h)],
        ]
    )
    rois[:, : len(special)] = special
    return rois


def level_reference(
    rois: torch.Tensor,
    features: list[torch.Tensor],
    output: int,
    sampling_ratio: int,
    aligned: bool,
    mode: int,
) -> torch.Tensor:
    """torchvision's level mapper + per-level roi_align / roi_pool: ``[N, R, C, out, out]``."""
    n, r, _ = rois.shape
    device = rois.device
    scales = [1.0 / s for s in STRIDES[: len(features)]]
    batch_index = torch.arange(n, device=device).repeat_interleave(r).to(rois.dtype)[:, None]
    flat = torch.cat([batch_index, rois.reshape(-1, 4)], dim=1)
    if len(features) == 1:
        levels = torch.zeros(n * r, dtype=torch.int64, device=device)
    else:
        k_min, k_max = round(np.log2(STRIDES[0])), round(np.log2(STRIDES[len(features) - 1]))
        levels = initLevelMapper(k_min, k_max)(list(rois.unbind(0)))
    out = torch.zeros(n * r, features[0].shape[1], output, output, dtype=rois.dtype, device=device)
    for level, (feature, scale) in enumerate(zip(features, scales, strict=True)):
        idx = torch.where(levels == level)[0]
        if mode == 0:
            out[idx] = roi_align(feature, flat[idx], output, scale, sampling_ratio, aligned)
        else:
            out[idx] = roi_pool(feature, flat[idx], output, scale)
    return out.reshape(n, r, -1, output, output)


def run_kernel(kernels, rois, features, output, sampling_ratio, aligned, mode=0) -> np.ndarray:
    scales = [1.0 / s for s in STRIDES[: len(features)]]
    return kernels.multi_level_roi_align(
        rois.numpy(), [f.numpy() for f in features], output, output, scales, sampling_ratio, aligned, mode
    )


@pytest.mark.parametrize("sampling_ratio", [2, 0])
def test_roi_align_matches_torchvision_multiscale_roi_align(kernels, sampling_ratio):
    features = make_features(4, 2, 5, seed=1)
    rois = make_rois(2, 60, seed=2)
    pooler = MultiScaleRoIAlign(["0", "1", "2", "3"], 7, sampling_ratio)
    expected = pooler(
        OrderedDict((str(i), f) for i, f in enumerate(features)), list(rois.unbind(0)), [IMAGE_HW, IMAGE_HW]
    )
    got = run_kernel(kernels, rois, features, 7, sampling_ratio, False)
    np.testing.assert_allclose(got.reshape(expected.shape), expected.numpy(), rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("levels", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("aligned", [False, True])
def test_roi_align_matches_per_level_roi_align_for_1_to_5_levels(kernels, levels, aligned):
    features = make_features(levels, 2, 3, seed=10 + levels)
    rois = make_rois(2, 40, seed=20 + levels)
    if levels == 1 and aligned:
        # torchvision's roi_align raises on a box inverted along one axis with aligned=True and adaptive
        # sampling (negative sample count); with several levels such a box maps to no level at all.
        rois[:, 2] = torch.tensor([20.0, 40.0, 50.0, 60.0])
    for sampling_ratio in (-1, 1, 3):
        expected = level_reference(rois, features, 5, sampling_ratio, aligned, 0)
        got = run_kernel(kernels, rois, features, 5, sampling_ratio, aligned)
        np.testing.assert_allclose(got, expected.numpy(), rtol=0, atol=TOLERANCE)


def test_roi_align_non_square_output_and_14x14(kernels):
    features = make_features(4, 1, 4, seed=3)
    rois = make_rois(1, 30, seed=4)
    scales = [1.0 / s for s in STRIDES[:4]]
    got = kernels.multi_level_roi_align(rois.numpy(), [f.numpy() for f in features], 14, 10, scales, 2, True)
    levels = initLevelMapper(2, 5)(list(rois.unbind(0)))
    flat = torch.cat([torch.zeros(30, 1), rois[0]], dim=1)
    for level in range(4):
        idx = torch.where(levels == level)[0]
        ref = roi_align(features[level], flat[idx], (14, 10), scales[level], 2, True)
        np.testing.assert_allclose(got[0, idx.numpy()], ref.numpy(), rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("levels", [1, 4])
def test_roi_pool_mode_matches_torchvision_roi_pool(kernels, levels):
    features = make_features(levels, 2, 4, seed=5)
    rois = make_rois(2, 50, seed=6)
    expected = level_reference(rois, features, 7, 0, False, 1)
    got = run_kernel(kernels, rois, features, 7, 0, False, mode=1)
    np.testing.assert_allclose(got, expected.numpy(), rtol=0, atol=TOLERANCE)


def test_roi_align_with_no_rois_gives_empty_output(kernels):
    features = make_features(4, 2, 3, seed=7)
    got = run_kernel(kernels, torch.zeros(2, 0, 4), features, 7, 2, False)
    assert got.shape == (2, 0, 3, 7, 7)


def test_roi_align_float16_inputs_give_float16_close_to_float32(kernels):
    features = make_features(4, 1, 3, seed=8)
    rois = make_rois(1, 20, seed=9)
    half = [f.half() for f in features]
    scales = [1.0 / s for s in STRIDES[:4]]
    got = kernels.multi_level_roi_align(
        rois.half().numpy(), [f.numpy() for f in half], 7, 7, scales, 2, False
    )
    assert got.dtype == np.float16
    expected = level_reference(rois.half().float(), [f.float() for f in half], 7, 2, False, 0)
    np.testing.assert_allclose(got.astype(np.float32), expected.numpy(), rtol=0, atol=4e-3)


def test_roi_align_rejects_mismatched_scales(kernels):
    features = make_features(2, 1, 3, seed=0)
    with pytest.raises(PluginOpsError, match="spatial_scales"):
        kernels.multi_level_roi_align(
            np.zeros((1, 1, 4), np.float32), [f.numpy() for f in features], 7, 7, [0.25], 2, False
        )


# ---------------------------------------------------------------------------------------------------
# NMS
# ---------------------------------------------------------------------------------------------------


def random_boxes(count: int, seed: int, integer: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(count, 2, generator=g) * 400
    wh = torch.rand(count, 2, generator=g) * 120 + 1
    boxes = torch.cat([xy, xy + wh], dim=1)
    if integer:
        boxes = boxes.round()
    return boxes, torch.rand(count, generator=g)


@pytest.mark.parametrize("iou", [0.2, 0.5, 0.8])
def test_nms_indices_equal_torchvision_nms_on_1000_boxes(kernels, iou):
    boxes, scores = random_boxes(1000, seed=int(iou * 10))
    expected = nms(boxes, scores, iou).numpy()
    keep, count = kernels.batched_nms(
        boxes[None].numpy(), scores[None].numpy(), np.zeros((1, 1000)), iou, float("-inf"), 1000
    )
    assert count[0] == len(expected)
    np.testing.assert_array_equal(keep[0, : count[0]], expected)
    assert (keep[0, count[0] :] == -1).all()


def test_nms_score_ties_keep_torchvision_order(kernels):
    boxes, _ = random_boxes(600, seed=11)
    boxes[300:] = boxes[:300]  # exact duplicates: IoU 1
    scores = torch.randint(0, 5, (600,), generator=torch.Generator().manual_seed(12)).float() / 4
    for iou in (0.3, 0.7):
        expected = nms(boxes, scores, iou).numpy()
        keep, count = kernels.batched_nms(
            boxes[None].numpy(), scores[None].numpy(), np.zeros((1, 600)), iou, float("-inf"), 600
        )
        np.testing.assert_array_equal(keep[0, : count[0]], expected)


def batched_reference(boxes, scores, idxs, iou, score_threshold, max_output, pre_nms_top_n):
    """The contract's semantics on torchvision.ops.batched_nms, for one image."""
    candidates = torch.where(scores > score_threshold)[0]
    order = torch.sort(scores[candidates], descending=True, stable=True).indices
    candidates = candidates[order]
    if pre_nms_top_n >= 0:
        candidates = candidates[:pre_nms_top_n]
    keep = batched_nms(boxes[candidates], scores[candidates], idxs[candidates], iou)[:max_output]
    return candidates[keep].numpy()


@pytest.mark.parametrize(
    ("iou", "score_threshold", "max_output", "pre_nms_top_n", "classes"),
    [
        (0.5, float("-inf"), 2000, -1, 5),
        (0.7, 0.3, 100, -1, 3),
        (0.5, 0.05, 50, 300, 80),
        (0.3, 0.0, 1000, 1000, 1),
    ],
)
def test_batched_nms_matches_torchvision_batched_nms(
    kernels, iou, score_threshold, max_output, pre_nms_top_n, classes
):
    batch, count = 3, 1200
    all_boxes, all_scores, all_idxs = [], [], []
    for i in range(batch):
        boxes, scores = random_boxes(count, seed=100 + i, integer=True)
        all_boxes.append(boxes)
        all_scores.append(scores)
        all_idxs.append(torch.randint(0, classes, (count,), generator=torch.Generator().manual_seed(200 + i)))
    boxes, scores, idxs = torch.stack(all_boxes), torch.stack(all_scores), torch.stack(all_idxs)
    keep, counts = kernels.batched_nms(
        boxes.numpy(), scores.numpy(), idxs.numpy(), iou, score_threshold, max_output, pre_nms_top_n
    )
    assert keep.shape == (batch, max_output) and keep.dtype == np.int64
    for i in range(batch):
        expected = batched_reference(
            boxes[i], scores[i], idxs[i], iou, score_threshold, max_output, pre_nms_top_n
        )
        assert counts[i] == len(expected)
        np.testing.assert_array_equal(keep[i, : counts[i]], expected)
        assert (keep[i, counts[i] :] == -1).all()


def stable_class_aware_reference(boxes, scores, idxs, iou, score_threshold, max_output):
    """Per-class torchvision nms, merged in stable score order: tie order independent of any unstable sort."""
    candidates = torch.where(scores > score_threshold)[0]
    candidates = candidates[torch.sort(scores[candidates], descending=True, stable=True).indices]
    kept = torch.zeros(len(scores), dtype=torch.bool)
    for c in torch.unique(idxs[candidates]):
        members = candidates[idxs[candidates] == c]
        kept[members[nms(boxes[members], scores[members], iou)]] = True
    return candidates[kept[candidates]][:max_output].numpy()


def test_batched_nms_class_aware_with_score_ties_keeps_stable_order(kernels):
    boxes, scores = random_boxes(2000, seed=9, integer=True)
    scores = scores.half().float()  # float16 scores: many ties across and within classes
    idxs = torch.randint(0, 4, (2000,), generator=torch.Generator().manual_seed(10))
    expected = stable_class_aware_reference(boxes, scores, idxs, 0.5, 0.1, 200)
    keep, count = kernels.batched_nms(
        boxes[None].numpy(), scores[None].numpy(), idxs[None].numpy(), 0.5, 0.1, 200
    )
    assert count[0] == len(expected)
    np.testing.assert_array_equal(keep[0, : count[0]], expected)


def test_batched_nms_with_no_boxes_or_no_candidates_gives_padding(kernels):
    keep, count = kernels.batched_nms(np.zeros((2, 0, 4)), np.zeros((2, 0)), np.zeros((2, 0)), 0.5, 0.0, 4)
    assert count.tolist() == [0, 0] and (keep == -1).all()
    boxes, _ = random_boxes(50, seed=1)
    keep, count = kernels.batched_nms(
        boxes[None].numpy(), np.full((1, 50), -np.inf), np.zeros((1, 50)), 0.5, float("-inf"), 10
    )
    assert count.tolist() == [0] and (keep == -1).all()


def test_batched_nms_rejects_mismatched_shapes(kernels):
    with pytest.raises(PluginOpsError, match="scores"):
        kernels.batched_nms(np.zeros((1, 5, 4)), np.zeros((1, 4)), np.zeros((1, 5)), 0.5, 0.0, 4)


def test_cpu_library_is_compiled_into_the_source_keyed_cache_and_found_there(tmp_path, monkeypatch):
    from edgercnn.runtime import plugin_ops

    monkeypatch.delenv("EDGERCNN_PLUGIN_CPU_LIB", raising=False)
    monkeypatch.setenv("EDGERCNN_CACHE_DIR", str(tmp_path))
    target = plugin_ops._cache_dir() / f"cpu-{plugin_ops._source_hash()}" / plugin_ops._LIB_NAME
    assert tmp_path in target.parents
    plugin_ops._compile_cpu_library(target)
    assert plugin_ops.find_cpu_library() == target
    boxes = np.array([[[0, 0, 10, 10], [1, 1, 10, 10]]], np.float32)
    keep, count = CpuKernels(target).batched_nms(
        boxes, np.array([[0.9, 0.8]]), np.zeros((1, 2)), 0.5, -1.0, 2
    )
    assert keep.tolist() == [[0, -1]] and count.tolist() == [1]


def test_unwritable_cache_gives_one_clear_error(tmp_path, monkeypatch):
    from edgercnn.runtime import plugin_ops

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.delenv("EDGERCNN_PLUGIN_CPU_LIB", raising=False)
    monkeypatch.setenv("EDGERCNN_CACHE_DIR", str(blocker))
    with pytest.raises(PluginOpsError, match="EDGERCNN_CACHE_DIR"):
        plugin_ops._compile_cpu_library(blocker / "plugins" / "x" / "libedgercnn_cpu.so")


def test_missing_library_path_in_environment_is_named(monkeypatch):
    from edgercnn.runtime import plugin_ops

    monkeypatch.setenv("EDGERCNN_PLUGIN_CPU_LIB", "/nonexistent/libedgercnn_cpu.so")
    with pytest.raises(PluginOpsError, match=r"/nonexistent/libedgercnn_cpu\.so"):
        plugin_ops.find_cpu_library()
