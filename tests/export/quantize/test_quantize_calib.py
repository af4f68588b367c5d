"""Calibration statistics: the widening |x| histogram, entropy and percentile clipping."""

from __future__ import annotations

import numpy as np
import pytest
from edgercnn.export.quantize.ranges import AbsHistogram, entropy_bin, range_from_histogram


def test_histogram_keeps_exact_extremes_and_every_sample_when_the_range_grows():
    rng = np.random.default_rng(0)
    chunks = [rng.normal(0, s, 5000).astype(np.float32) for s in (0.5, 1.0, 4.0)]
    collector = AbsHistogram()
    for chunk in chunks:
        collector.add(chunk)
    everything = np.concatenate(chunks)
    assert collector.low == everything.min() and collector.high == everything.max()
    assert collector.amax == pytest.approx(np.abs(everything).max())
    assert collector.hist.sum() == pytest.approx(everything.size)


def test_percentile_threshold_matches_numpy_within_one_bin():
    rng = np.random.default_rng(1)
    values = rng.laplace(0, 1, 200_000).astype(np.float32)
    collector = AbsHistogram()
    collector.add(values)
    low, high = range_from_histogram(collector, "percentile", 99.9)
    reference = np.percentile(np.abs(values), 99.9)
    bin_width = collector.amax / collector.bins
    assert high == pytest.approx(reference, abs=2 * bin_width)
    assert low == pytest.approx(-reference, abs=2 * bin_width)


def test_entropy_clips_rare_outliers_but_not_a_uniform_distribution():
    rng = np.random.default_rng(2)
    gaussian = np.concatenate([rng.normal(0, 1, 100_000), [60.0, -55.0]]).astype(np.float32)
    collector = AbsHistogram()
    collector.add(gaussian)
    _, high = range_from_histogram(collector, "entropy", 99.99)
    assert 3.0 < high < 20.0  # far below the outliers' 60, well above the bulk
    uniform = AbsHistogram()
    uniform.add(rng.uniform(-1, 1, 100_000).astype(np.float32))
    assert entropy_bin(uniform.hist) >= uniform.bins - 16


def test_minmax_and_one_sided_tensors_keep_the_observed_range():
    relu = AbsHistogram()
    relu.add(np.abs(np.random.default_rng(3).normal(0, 1, 10_000)).astype(np.float32))
    assert range_from_histogram(relu, "minmax", 99.99) == (relu.low, relu.high)
    low, high = range_from_histogram(relu, "entropy", 99.99)
    assert low == relu.low >= 0 and 0 < high <= relu.high  # a ReLU output is never given negative range


def test_entropy_threshold_of_a_relu_output_is_not_pulled_down_by_its_zeros():
    rng = np.random.default_rng(4)
    values = np.maximum(rng.normal(0, 1, 200_000), 0).astype(np.float32)  # half exact zeros
    values[:1000] = 0.0
    collector = AbsHistogram()
    collector.add(values)
    _, high = range_from_histogram(collector, "entropy", 99.99)
    assert high > 3.0  # the bulk of a unit Gaussian's positive half (the zero spike pulled it to 1.96)
