"""Detection-level comparison of two detectors' outputs (numpy only, shared by export and runtime).

Padded rows are garbage by design, so parity is judged on detections: each reference detection is
matched to at most one candidate of the same label, greedily by IoU (highest IoU pair first), and
the matched pairs give box, score, mask and keypoint errors. Used by ``edgercnn parity`` (eager vs
deploy graph vs ONNX), by the engine checks on a target and by the FP16 check. The INT8 search's
``detection_distance`` (one number per layer) is here too, on the same IoU.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from .detections import Detections
from .postprocess import MASK_THRESHOLD  # one threshold: masks are judged as they are pasted

# Defaults of the parity targets: a reference detection counts as reproduced when a candidate of
# the same label overlaps it at IoU >= 0.99 with a score within 1e-3.
STRICT_IOU = 0.99
SCORE_TOLERANCE = 1e-3
# Pairs below this IoU are not considered the same object at all.
MATCH_IOU = 0.5
MIN_SCORE = 0.05
# ``Detections``, or a dict of arrays: boxes, scores, labels[, masks, keypoints]
DetectionsLike = Detections | Mapping[str, Any]


def box_iou(a: np.ndarray, b: np.ndarray, dtype: DTypeLike = np.float64) -> np.ndarray:
    """``[A, B]`` IoU of ``x1, y1, x2, y2`` boxes (areas without +1, as torchvision), in ``dtype``."""
    a = np.asarray(a, dtype=dtype).reshape(-1, 4)
    b = np.asarray(b, dtype=dtype).reshape(-1, 4)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    return iou


def match_detections(
    ref_boxes: np.ndarray,
    ref_labels: np.ndarray,
    cand_boxes: np.ndarray,
    cand_labels: np.ndarray,
    min_iou: float = MATCH_IOU,
) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching of same-label boxes by decreasing IoU: ``(ref, cand, iou)``."""
    if len(ref_boxes) == 0 or len(cand_boxes) == 0:
        return []
    iou = box_iou(ref_boxes, cand_boxes)
    same = np.asarray(ref_labels).reshape(-1, 1) == np.asarray(cand_labels).reshape(1, -1)
    iou = np.where(same, iou, -1.0)
    pairs = np.argwhere(iou >= min_iou)
    order = np.argsort(-iou[pairs[:, 0], pairs[:, 1]], kind="stable")
    used_ref: set[int] = set()
    used_cand: set[int] = set()
    matches: list[tuple[int, int, float]] = []
    for i, j in pairs[order]:
        if i in used_ref or j in used_cand:
            continue
        used_ref.add(int(i))
        used_cand.add(int(j))
        matches.append((int(i), int(j), float(iou[i, j])))
    return matches


def mask_iou(a: np.ndarray, b: np.ndarray, threshold: float = MASK_THRESHOLD) -> float:
    """IoU of two same-size masks (probabilities or booleans), binarized at ``threshold``."""
    ma = np.asarray(a) > threshold if np.asarray(a).dtype != bool else np.asarray(a)
    mb = np.asarray(b) > threshold if np.asarray(b).dtype != bool else np.asarray(b)
    union = np.logical_or(ma, mb).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(ma, mb).sum() / union)


@dataclass
class ParityTally:
    """Running totals over images for one candidate compared with the reference."""

    strict_iou: float = STRICT_IOU
    score_tolerance: float = SCORE_TOLERANCE
    min_score: float = MIN_SCORE
    images: int = 0
    reference_detections: int = 0
    candidate_detections: int = 0
    matched: int = 0
    matched_strict: int = 0
    max_box_error: float = 0.0
    max_score_error: float = 0.0
    min_matched_iou: float = 1.0
    mask_ious: list[float] = field(default_factory=list)
    max_keypoint_error: float = 0.0
    keypoint_pairs: int = 0
    keypoints_compared: int = 0
    keypoints_within_1px: int = 0

    def add(self, reference: DetectionsLike, candidate: DetectionsLike) -> None:
        """Compare one image's detections (``Detections``, or dicts of boxes, scores, labels[, masks,
        keypoints])."""
        ref = _above(detection_arrays(reference), self.min_score)
        candidate = detection_arrays(candidate)
        cand = _above(candidate, self.min_score / 2)  # a ref at 0.0501 may sit at 0.0499 here
        self.images += 1
        self.reference_detections += len(ref["scores"])
        self.candidate_detections += int((np.asarray(candidate["scores"]) >= self.min_score).sum())
        for i, j, iou in match_detections(ref["boxes"], ref["labels"], cand["boxes"], cand["labels"]):
            score_error = abs(float(ref["scores"][i]) - float(cand["scores"][j]))
            self.matched += 1
            self.min_matched_iou = min(self.min_matched_iou, iou)
            if iou >= self.strict_iou and score_error <= self.score_tolerance:
                self.matched_strict += 1
            box_error = float(np.abs(np.asarray(ref["boxes"][i]) - np.asarray(cand["boxes"][j])).max())
            self.max_box_error = max(self.max_box_error, box_error)
            self.max_score_error = max(self.max_score_error, score_error)
            if "masks" in ref and "masks" in cand:
                self.mask_ious.append(mask_iou(ref["masks"][i], cand["masks"][j]))
            if "keypoints" in ref and "keypoints" in cand:
                diff = np.abs(
                    np.asarray(ref["keypoints"][i])[:, :2] - np.asarray(cand["keypoints"][j])[:, :2]
                )
                self.max_keypoint_error = max(self.max_keypoint_error, float(diff.max(initial=0.0)))
                self.keypoint_pairs += 1
                per_keypoint = diff.max(axis=-1, initial=0.0)
                self.keypoints_compared += int(per_keypoint.size)
                self.keypoints_within_1px += int((per_keypoint <= 1.0).sum())

    @property
    def matched_share(self) -> float:
        """Share of reference detections reproduced strictly (1.0 when there were none)."""
        if self.reference_detections == 0:
            return 1.0
        return self.matched_strict / self.reference_detections

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "images": self.images,
            "reference_detections": self.reference_detections,
            "candidate_detections": self.candidate_detections,
            "matched": self.matched,
            "matched_strict": self.matched_strict,
            "matched_share": self.matched_share,
            "strict_iou": self.strict_iou,
            "score_tolerance": self.score_tolerance,
            "max_box_error_px": self.max_box_error,
            "max_score_error": self.max_score_error,
            "min_matched_iou": self.min_matched_iou if self.matched else None,
        }
        if self.mask_ious:
            out["mean_mask_iou"] = float(np.mean(self.mask_ious))
            out["min_mask_iou"] = float(np.min(self.mask_ious))
        if self.keypoint_pairs:
            out["max_keypoint_error_px"] = self.max_keypoint_error
            out["keypoints_within_1px_share"] = self.keypoints_within_1px / max(self.keypoints_compared, 1)
        return out


def detection_arrays(detections: DetectionsLike) -> Mapping[str, Any]:
    """The arrays matching reads: a dict as it is, ``Detections`` as boxes, scores, labels[, masks
    (K, H, W) bool, keypoints]."""
    if not isinstance(detections, Detections):
        return detections
    out: dict[str, np.ndarray] = {
        "boxes": detections.boxes,
        "scores": detections.scores,
        "labels": detections.labels,
    }
    masks = detections.masks
    if masks is not None:
        out["masks"] = masks
    if detections.keypoints is not None:
        out["keypoints"] = detections.keypoints
    return out


def graph_detections(outputs: Mapping[str, np.ndarray], image: int) -> dict[str, np.ndarray]:
    """One image's valid rows of a graph's padded outputs (``num_detections`` of each)."""
    n = int(outputs["num_detections"][image])
    dets = {key: outputs[key][image, :n] for key in ("boxes", "scores", "labels")}
    for key in ("masks", "keypoints"):
        if key in outputs:
            dets[key] = outputs[key][image, :n]
    return dets


def detection_distance(reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray]) -> float:
    """0 when two graphs' detections agree, 1 when none match, over every image of the batch.

    Greedy matching by decreasing reference score: same label, best IoU. A match contributes
    ``IoU * min(score_ref, score_cand)``; the total is normalized by the larger score mass, so
    missed, extra, moved and re-scored detections all count. One cheap number per model, for
    ranking the INT8 search's layers (``export/quantize/sensitivity.py``).
    """
    agreed = 0.0
    mass = 0.0
    for i in range(reference["num_detections"].shape[0]):
        ref, cand = graph_detections(reference, i), graph_detections(candidate, i)
        ref_boxes, ref_scores, ref_labels = ref["boxes"], ref["scores"], ref["labels"]
        cand_boxes, cand_scores, cand_labels = cand["boxes"], cand["scores"], cand["labels"]
        iou_type = np.result_type(ref_boxes, cand_boxes)  # the outputs' own float type, as measured so far
        mass += max(float(ref_scores.sum()), float(cand_scores.sum()))
        free = np.ones(len(cand_scores), dtype=bool)
        for j in np.argsort(-ref_scores, kind="stable"):
            options = free & (cand_labels == ref_labels[j])
            if not options.any():
                continue
            ious = np.where(options, box_iou(ref_boxes[j], cand_boxes, iou_type)[0], -1.0)
            best = int(np.argmax(ious))
            if ious[best] <= 0:
                continue
            free[best] = False
            agreed += float(ious[best]) * min(float(ref_scores[j]), float(cand_scores[best]))
    return 0.0 if mass == 0 else 1.0 - agreed / mass


def _above(detections: Mapping[str, np.ndarray], min_score: float) -> dict[str, np.ndarray]:
    scores = np.asarray(detections["scores"]).reshape(-1)
    keep = scores >= min_score
    return {key: np.asarray(value)[keep] for key, value in detections.items() if value is not None}
