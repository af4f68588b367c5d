"""Kernel bounds the CPU and CUDA RoIAlign share (plugins/src/common/roi_align_math.h), checked on the
CPU kernels: non-finite and huge RoIs end quickly with a bounded sampling grid, an empty level
(H or W = 0) reads nothing, and level tables the fused level mapping cannot serve are refused.
Reference where one exists: torchvision's roi_align (with the clamped grid as its sampling ratio)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from edgercnn.runtime.plugin_ops import CpuKernels, PluginOpsError, load_cpu_kernels
from torchvision.ops import roi_align

from tests.plugins.test_plugins_cpu import STRIDES, level_reference, make_features, make_rois

MAX_SAMPLING_GRID = 256  # kMaxSamplingGrid in roi_align_math.h
SCALES = [1.0 / s for s in STRIDES]


@pytest.fixture(scope="module")
def kernels() -> CpuKernels:
    return load_cpu_kernels()


def test_non_finite_rois_give_zeros_quickly_with_adaptive_sampling(kernels: CpuKernels) -> None:
    """ceil(inf) cast to int was undefined: on the GPU a 2^31-sample loop per output."""
    features = [f.numpy() for f in make_features(4, 1, 3, seed=5)]
    inf, nan = float("inf"), float("nan")
    rois = np.array(
        [[[0, 0, inf, inf], [-inf, 0, 10, 10], [nan, 0, 10, 10], [0, 0, nan, nan], [inf, inf, inf, inf]]],
        dtype=np.float32,
    )
    started = time.perf_counter()
    out = kernels.multi_level_roi_align(rois, features, 7, 7, SCALES[:4], 0, False)
    assert time.perf_counter() - started < 20
    assert np.isfinite(out).all() and not out.any()


def test_adaptive_grid_is_clamped_to_256_samples_per_bin_axis(kernels: CpuKernels) -> None:
    """A 2100-px RoI on a stride-1 level asks for ceil(2100 / 7) = 300 samples per axis; the kernel
    takes 256, which is exactly torchvision with sampling_ratio=256 (and not its adaptive 300)."""
    g = torch.Generator().manual_seed(3)
    feature = torch.randn(1, 2, 64, 64, generator=g)
    roi = torch.tensor([[0.0, 0.0, 0.0, 2100.0, 2100.0]])
    got = kernels.multi_level_roi_align(
        roi[:, 1:][None].numpy(), [feature.numpy()], 7, 7, [1.0], 0, False
    ).reshape(1, 2, 7, 7)
    clamped = roi_align(feature, roi, 7, 1.0, MAX_SAMPLING_GRID, False)
    adaptive = roi_align(feature, roi, 7, 1.0, 0, False)
    np.testing.assert_allclose(got, clamped.numpy(), rtol=0, atol=1e-5)
    assert not np.allclose(got, adaptive.numpy(), rtol=0, atol=1e-7)
    # below the bound nothing changes: 7 * 200 px -> 200 samples, torchvision's adaptive grid
    small = torch.tensor([[0.0, 0.0, 0.0, 1400.0, 1400.0]])
    got_small = kernels.multi_level_roi_align(
        small[:, 1:][None].numpy(), [feature.numpy()], 7, 7, [1.0], 0, False
    )
    expected = roi_align(feature, small, 7, 1.0, 0, False)
    np.testing.assert_allclose(got_small.reshape(1, 2, 7, 7), expected.numpy(), rtol=0, atol=1e-5)


@pytest.mark.parametrize("mode", [0, 1])
def test_an_empty_level_samples_as_zeros_and_reads_nothing(kernels: CpuKernels, mode: int) -> None:
    """torchvision would read index -1 of an H = 0 map (y_low = H - 1); here those RoIs give zeros
    and every other RoI is unchanged."""
    features = make_features(4, 1, 3, seed=7)
    empty = torch.zeros(1, 3, 0, features[2].shape[3])
    rois = make_rois(1, 80, seed=8)
    got = kernels.multi_level_roi_align(
        rois.numpy(),
        [f.numpy() for f in (features[0], features[1], empty, features[3])],
        7,
        7,
        SCALES[:4],
        2,
        False,
        mode,
    )
    # reference: the same level as a 1x1 map of zeros (every bilinear tap and max there is 0)
    stand_in = torch.zeros(1, 3, 1, 1)
    expected = level_reference(rois, [features[0], features[1], stand_in, features[3]], 7, 2, False, mode)
    np.testing.assert_allclose(got, expected.numpy(), rtol=0, atol=1e-5)
    single = kernels.multi_level_roi_align(rois.numpy(), [empty.numpy()], 7, 7, [0.25], 0, True, mode)
    assert not single.any()


@pytest.mark.parametrize(
    "scales",
    [
        [0.25, 0.0625],  # a gap: levels 2 and 4
        [0.125, 0.25],  # coarsest first
        [0.25, 0.25],  # the same level twice
        [0.25, 0.3],  # not a power of two
        [0.25, float("nan")],
    ],
)
def test_level_tables_the_fused_mapping_cannot_serve_are_refused(
    kernels: CpuKernels, scales: list[float]
) -> None:
    features = [f.numpy() for f in make_features(2, 1, 2, seed=1)]
    rois = make_rois(1, 12, seed=2).numpy()
    with pytest.raises(PluginOpsError, match="rejected its arguments"):
        kernels.multi_level_roi_align(rois, features, 7, 7, scales, 2, False)
