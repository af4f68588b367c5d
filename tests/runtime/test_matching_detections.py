"""runtime.matching: IoU as torchvision computes it, greedy same-label matching, parity tallies."""

from __future__ import annotations

import numpy as np
import torch
import torchvision
from edgercnn.runtime.matching import ParityTally, box_iou, mask_iou, match_detections


def _boxes(rng, count):
    xy = rng.uniform(0, 100, size=(count, 2))
    wh = rng.uniform(0, 40, size=(count, 2))
    return np.concatenate([xy, xy + wh], axis=1).astype(np.float32)


def test_box_iou_equals_torchvision_box_iou():
    rng = np.random.default_rng(0)
    a, b = _boxes(rng, 30), _boxes(rng, 20)
    a[0] = [5, 5, 5, 9]  # zero-area box
    expected = torchvision.ops.box_iou(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(box_iou(a, b), np.nan_to_num(expected), atol=1e-6)


def test_matching_is_one_to_one_same_label_and_highest_iou_first():
    ref = np.array([[0, 0, 10, 10], [0, 0, 10, 11]], dtype=np.float32)
    cand = np.array([[0, 0, 10, 11], [50, 50, 60, 60], [0, 0, 10, 10]], dtype=np.float32)
    matches = match_detections(ref, np.array([1, 1]), cand, np.array([1, 1, 2]))
    # cand 2 has the wrong label; both refs want cand 0, the better overlap (ref 1, IoU 1) wins.
    assert [(i, j) for i, j, _ in matches] == [(1, 0)]
    assert matches[0][2] == 1.0


def test_no_detections_on_either_side_gives_no_matches():
    empty = np.zeros((0, 4), dtype=np.float32)
    assert match_detections(empty, np.zeros(0), _boxes(np.random.default_rng(1), 3), np.ones(3)) == []
    tally = ParityTally()
    tally.add(
        {"boxes": empty, "scores": np.zeros(0), "labels": np.zeros(0)},
        {"boxes": empty, "scores": np.zeros(0), "labels": np.zeros(0)},
    )
    assert tally.matched_share == 1.0 and tally.reference_detections == 0


def test_tally_counts_strict_matches_and_worst_errors():
    rng = np.random.default_rng(2)
    boxes = _boxes(rng, 10) + np.array([0, 0, 20, 20], dtype=np.float32)  # no tiny boxes
    scores = np.linspace(0.9, 0.1, 10).astype(np.float32)
    labels = np.arange(10) % 3 + 1
    cand_boxes, cand_scores = boxes.copy(), scores.copy()
    cand_boxes[0, 2] += 4.0  # IoU drops below 0.99
    cand_scores[1] += 0.01  # score error above 1e-3
    ref = {"boxes": boxes, "scores": scores, "labels": labels}
    cand = {"boxes": cand_boxes, "scores": cand_scores, "labels": labels}
    tally = ParityTally()
    tally.add(ref, cand)
    assert tally.reference_detections == 10
    assert tally.matched == 10 and tally.matched_strict == 8
    assert abs(tally.max_box_error - 4.0) < 1e-5
    assert abs(tally.max_score_error - 0.01) < 1e-6


def test_references_below_min_score_are_not_counted():
    boxes = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], dtype=np.float32)
    ref = {"boxes": boxes, "scores": np.array([0.9, 0.01]), "labels": np.array([1, 1])}
    tally = ParityTally(min_score=0.05)
    tally.add(ref, {"boxes": boxes[:1], "scores": np.array([0.9]), "labels": np.array([1])})
    assert tally.reference_detections == 1 and tally.matched_share == 1.0


def test_mask_iou_binarizes_probabilities():
    a = np.zeros((8, 8), dtype=np.float32)
    b = np.zeros((8, 8), dtype=np.float32)
    a[:4] = 0.9
    b[:2] = 0.6
    b[2:4] = 0.4  # below 0.5: not part of mask b
    assert mask_iou(a, b) == 0.5
    assert mask_iou(np.zeros((3, 3)), np.zeros((3, 3))) == 1.0
