"""CUDA kernels (plugins/src/cuda through their C entry points, ctypes on torch CUDA tensors) against
torchvision's CUDA ops and the contract's NMS semantics. Runs only where a CUDA GPU is present
(``-m gpu`` on a lent device machine); FP32 to 1e-5, FP16 within 4e-3, NMS indices exactly."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import nms, roi_align

from tests.plugins.test_plugins_cpu import (
    STRIDES,
    batched_reference,
    level_reference,
    make_features,
    make_rois,
    random_boxes,
    stable_class_aware_reference,
)

pytestmark = pytest.mark.gpu

SCALES = [1.0 / s for s in STRIDES]


@pytest.fixture(scope="module")
def cuda():
    if not torch.cuda.is_available():
        pytest.skip(
            "no CUDA GPU on this machine: the CUDA kernel tests run on a lent device machine (-m gpu)"
        )
    from edgercnn.plugins.cuda_kernels import CudaKernels, CudaKernelsError

    try:
        return CudaKernels()
    except (CudaKernelsError, OSError) as exc:
        pytest.skip(f"CUDA kernel library unavailable (build plugins/ with CMake or install nvcc): {exc}")


def to_cuda(tensors):
    return [t.cuda() for t in tensors]


@pytest.mark.parametrize("levels", [1, 4, 5])
@pytest.mark.parametrize(("sampling_ratio", "aligned"), [(2, False), (0, True), (-1, False)])
def test_cuda_roi_align_float32_matches_torchvision_cuda(cuda, levels, sampling_ratio, aligned):
    features = to_cuda(make_features(levels, 2, 8, seed=levels))
    rois = make_rois(2, 80, seed=levels + 1).cuda()
    if levels == 1 and aligned:
        rois[:, 2] = torch.tensor([20.0, 40.0, 50.0, 60.0], device="cuda")  # see the CPU test
    expected = level_reference(rois, features, 7, sampling_ratio, aligned, 0)
    got = cuda.multi_level_roi_align(rois, features, (7, 7), SCALES[:levels], sampling_ratio, aligned)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_cuda_roi_align_float16_within_4e_3_of_float32_on_the_same_inputs(cuda):
    features = [f.half() for f in to_cuda(make_features(4, 2, 16, seed=3))]
    rois = make_rois(2, 100, seed=4).cuda().half()
    got = cuda.multi_level_roi_align(rois, features, (7, 7), SCALES[:4], 2, False)
    assert got.dtype == torch.float16
    expected = level_reference(rois.float(), [f.float() for f in features], 7, 2, False, 0)
    torch.testing.assert_close(got.float(), expected, rtol=0, atol=4e-3)


def test_cuda_roi_align_float16_close_to_torchvision_float16(cuda):
    features = [f.half() for f in to_cuda(make_features(1, 1, 16, seed=5))]
    rois = make_rois(1, 60, seed=6).cuda().half()
    rois[:, 2] = torch.tensor([20.0, 40.0, 50.0, 60.0], device="cuda")
    got = cuda.multi_level_roi_align(rois, features, (7, 7), SCALES[:1], 2, True)
    flat = torch.cat([torch.zeros(60, 1, device="cuda", dtype=torch.half), rois[0]], dim=1)
    expected = roi_align(features[0], flat, 7, SCALES[0], 2, True)
    torch.testing.assert_close(got[0].float(), expected.float(), rtol=0, atol=4e-3)


@pytest.mark.parametrize("levels", [1, 4])
def test_cuda_roi_pool_mode_matches_torchvision_cuda_roi_pool(cuda, levels):
    features = to_cuda(make_features(levels, 2, 8, seed=7))
    rois = make_rois(2, 60, seed=8).cuda()
    expected = level_reference(rois, features, 7, 0, False, 1)
    got = cuda.multi_level_roi_align(rois, features, (7, 7), SCALES[:levels], 0, False, mode=1)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("algorithm", [1, 2], ids=["bitmask", "greedy"])
@pytest.mark.parametrize("iou", [0.2, 0.5, 0.8])
def test_cuda_nms_indices_equal_torchvision_nms_on_1000_boxes(cuda, algorithm, iou):
    boxes, scores = random_boxes(1000, seed=int(iou * 10))
    expected = nms(boxes, scores, iou)
    keep, count = cuda.batched_nms(
        boxes[None].cuda(),
        scores[None].cuda(),
        torch.zeros(1, 1000, dtype=torch.int64, device="cuda"),
        iou,
        float("-inf"),
        1000,
        algorithm=algorithm,
    )
    assert int(count[0]) == len(expected)
    assert torch.equal(keep[0, : len(expected)].cpu(), expected)
    assert bool((keep[0, len(expected) :] == -1).all())
    assert torch.equal(expected.cuda(), nms(boxes.cuda(), scores.cuda(), iou))  # torchvision CPU == CUDA


@pytest.mark.parametrize("algorithm", [0, 1, 2], ids=["auto", "bitmask", "greedy"])
@pytest.mark.parametrize(
    ("count", "iou", "score_threshold", "max_output", "pre_nms_top_n", "classes", "idx_dtype"),
    [
        (5000, 0.7, float("-inf"), 1000, -1, 5, torch.int64),  # the RPN: per-level NMS over 5 levels
        (3000, 0.5, 0.05, 100, -1, 80, torch.int32),  # the box head: class-aware
        (2000, 0.5, 0.2, 300, 700, 3, torch.int64),
    ],
)
def test_cuda_batched_nms_matches_contract_semantics(
    cuda, algorithm, count, iou, score_threshold, max_output, pre_nms_top_n, classes, idx_dtype
):
    batch = 2
    data = [random_boxes(count, seed=300 + i, integer=True) for i in range(batch)]
    boxes = torch.stack([d[0] for d in data])
    scores = torch.stack([d[1] for d in data])
    g = torch.Generator().manual_seed(7)
    idxs = torch.randint(0, classes, (batch, count), generator=g)
    keep, counts = cuda.batched_nms(
        boxes.cuda(),
        scores.cuda(),
        idxs.to(idx_dtype).cuda(),
        iou,
        score_threshold,
        max_output,
        pre_nms_top_n,
        algorithm=algorithm,
    )
    for i in range(batch):
        expected = batched_reference(
            boxes[i], scores[i], idxs[i], iou, score_threshold, max_output, pre_nms_top_n
        )
        assert int(counts[i]) == len(expected)
        assert keep[i, : len(expected)].cpu().numpy().tolist() == expected.tolist()
        assert bool((keep[i, len(expected) :] == -1).all())


def test_cuda_batched_nms_float16_matches_reference_on_rounded_inputs(cuda):
    boxes, scores = random_boxes(2000, seed=9, integer=True)
    boxes, scores = boxes.half(), scores.half()  # scores now have many ties: stable order matters
    idxs = torch.randint(0, 4, (2000,), generator=torch.Generator().manual_seed(10))
    keep, count = cuda.batched_nms(boxes[None].cuda(), scores[None].cuda(), idxs[None].cuda(), 0.5, 0.1, 200)
    expected = stable_class_aware_reference(boxes.float(), scores.float(), idxs, 0.5, 0.1, 200)
    assert int(count[0]) == len(expected)
    assert keep[0, : len(expected)].cpu().numpy().tolist() == expected.tolist()


def test_cuda_batched_nms_empty_and_no_candidates_give_padding(cuda):
    keep, count = cuda.batched_nms(
        torch.zeros(2, 0, 4, device="cuda"),
        torch.zeros(2, 0, device="cuda"),
        torch.zeros(2, 0, dtype=torch.int64, device="cuda"),
        0.5,
        0.0,
        5,
    )
    assert count.tolist() == [0, 0] and bool((keep == -1).all())
    boxes, _ = random_boxes(100, seed=1)
    keep, count = cuda.batched_nms(
        boxes[None].cuda(),
        torch.full((1, 100), -float("inf"), device="cuda"),
        torch.zeros(1, 100, dtype=torch.int64, device="cuda"),
        0.5,
        float("-inf"),
        5,
    )
    assert count.tolist() == [0] and bool((keep == -1).all())


def test_cuda_roi_align_half_features_with_float32_rois_as_the_tensorrt_plugin_runs_it(cuda):
    """The plugin keeps RoIs FP32 under --precision fp16; only the features (and output) are HALF:
    the kernel reads FP32 RoIs next to HALF features, within 4e-3 of torchvision on the same inputs."""
    features = [f.half() for f in to_cuda(make_features(4, 2, 16, seed=11))]
    rois = make_rois(2, 100, seed=12).cuda()
    assert rois.dtype == torch.float32
    got = cuda.multi_level_roi_align(rois, features, (7, 7), SCALES[:4], 2, False)
    assert got.dtype == torch.float16
    expected = level_reference(rois, [f.float() for f in features], 7, 2, False, 0)
    torch.testing.assert_close(got.float(), expected, rtol=0, atol=4e-3)


def test_cuda_roi_align_bounds_match_the_cpu_kernels(cuda):
    """Non-finite RoIs end (bounded grid) with zeros, an empty level reads nothing: the same
    shared arithmetic as tests/plugins/test_plugins_bounds.py, on the device."""
    from edgercnn.runtime.plugin_ops import load_cpu_kernels

    features = make_features(4, 1, 3, seed=13)
    features[2] = torch.zeros(1, 3, 0, features[2].shape[3])
    rois = make_rois(1, 40, seed=14)
    rois[0, :3] = torch.tensor(
        [[0, 0, float("inf"), float("inf")], [float("nan"), 0, 9, 9], [0, 0, 1e30, 1e30]]
    )
    cpu = load_cpu_kernels().multi_level_roi_align(
        rois.numpy(), [f.numpy() for f in features], 7, 7, SCALES[:4], 0, False
    )
    got = cuda.multi_level_roi_align(rois.cuda(), to_cuda(features), (7, 7), SCALES[:4], 0, False)
    torch.cuda.synchronize()
    assert torch.isfinite(got).all() and not got[0, :3].any()
    torch.testing.assert_close(got.cpu(), torch.from_numpy(cpu), rtol=0, atol=1e-5)
