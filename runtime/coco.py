"""COCO scoring, torch-free: annotations, category mapping, ``Detections`` as results, COCOeval's AP.

One implementation for every AP the project prints: ``edgercnn eval`` on the device (points,
0-100), and on the build host the eager model's AP in a model card and ``edgercnn parity``'s AP
(fractions, 0-1); the scale is the caller's explicit choice. The results conversion is also the
one the COCO results sink writes. pycocotools is an optional dependency of the runtime, imported
only when something is loaded or scored.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .detections import Detections
from .errors import EdgercnnError

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")
# OKS sigma of every keypoint of a set that is not COCO's 17 (those keep pycocotools' own sigmas).
OTHER_KEYPOINT_SIGMA = 0.05


class EvaluateError(EdgercnnError):
    """Bad evaluation input: missing images, unreadable annotations, classes that do not match."""


def _coco_api() -> tuple[Any, Any]:
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ModuleNotFoundError as exc:
        raise EvaluateError("COCO AP needs pycocotools (pip install 'edgercnn[coco]')") from exc
    return COCO, COCOeval


def load_annotations(ann_path: str | Path) -> Any:
    """pycocotools' COCO object, quietly, with a clear error for a missing or malformed file."""
    coco_cls, _ = _coco_api()
    path = Path(ann_path)
    if not path.is_file():
        raise EvaluateError(f"{path}: annotation file not found")
    try:
        dataset = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvaluateError(
            f"{path}: not a COCO-format annotation file ({type(exc).__name__}: {exc})"
        ) from None
    check_annotations(dataset, path)
    coco = coco_cls()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    if not coco.getImgIds():
        raise EvaluateError(f"{path}: lists no image")
    return coco


# The fields COCOeval reads, by list: a missing one used to be a KeyError after the whole model run.
REQUIRED_FIELDS = {
    "images": ("id", "file_name"),
    "annotations": ("id", "image_id", "category_id", "bbox", "area"),
    "categories": ("id", "name"),
}
FIELDS_OF_IOU_TYPE = {"segm": ("segmentation",)}  # keypoint AP is scored only where a set has keypoints


def check_annotations(dataset: Any, path: Path, iou_types: Sequence[str] = ()) -> None:
    """Every list and field COCO scoring reads is present: one line naming the first one missing."""
    if not isinstance(dataset, dict):
        raise EvaluateError(f"{path}: not a COCO-format annotation file (a JSON object is expected)")
    for key, fields in REQUIRED_FIELDS.items():
        entries = dataset.get(key)
        if not isinstance(entries, list):
            raise EvaluateError(f"{path}: has no '{key}' list (a COCO annotation file needs one)")
        extra = tuple(f for t in iou_types if key == "annotations" for f in FIELDS_OF_IOU_TYPE.get(t, ()))
        for index, entry in enumerate(entries):
            missing = [f for f in (*fields, *extra) if not isinstance(entry, dict) or f not in entry]
            if missing:
                raise EvaluateError(f"{path}: {key}[{index}] has no '{missing[0]}' field")
            if key == "annotations" and not _is_box(entry["bbox"]):
                raise EvaluateError(
                    f"{path}: {key}[{index}].bbox is {entry['bbox']!r}, expected [x, y, w, h]"
                )


def _is_box(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 4
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    )


def coco_from_dict(dataset: dict[str, Any]) -> Any:
    """pycocotools' COCO object of an in-memory data set (a copy: scoring rewrites annotations)."""
    coco_cls, _ = _coco_api()
    coco = coco_cls()
    coco.dataset = copy.deepcopy(dataset)
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def keypoint_category_ids(coco: Any) -> set[int]:
    """Categories that have keypoints (the only ones keypoint AP can score)."""
    return {c["id"] for c in coco.loadCats(coco.getCatIds()) if c.get("keypoints")}


def category_map(class_names: tuple[str, ...], coco: Any, ann_path: str | Path) -> dict[int, int]:
    """Model label index -> COCO category id, by class name (ids are used when no name matches)."""
    by_name = {cat["name"]: cat["id"] for cat in coco.loadCats(coco.getCatIds())}
    mapping = {i: by_name[name] for i, name in enumerate(class_names) if i > 0 and name in by_name}
    if mapping:
        return mapping
    ids = set(by_name.values())
    mapping = {i: i for i in range(1, len(class_names)) if i in ids}
    if not mapping:
        raise EvaluateError(
            f"{ann_path}: no category matches the model's classes {list(class_names[1:])} "
            f"(categories: {sorted(by_name)})"
        )
    return mapping


def detections_to_coco(
    image_id: int, dets: Detections, categories: Mapping[int, int] | None = None
) -> list[dict[str, Any]]:
    """One image's detections as COCO result dicts: xywh box, RLE mask, flat keypoints.

    ``categories`` maps labels to COCO category ids, and labels it lacks are left out; without
    it the label is the category id. Keypoints carry COCO's visibility 1 (scores are not kept).
    """
    rles = dets.mask_rles()
    results = []
    for i in range(len(dets)):
        label = int(dets.labels[i])
        if categories is not None and label not in categories:
            continue
        x1, y1, x2, y2 = (float(v) for v in dets.boxes[i])
        item: dict[str, Any] = {
            "image_id": int(image_id),
            "category_id": label if categories is None else categories[label],
            "bbox": [x1, y1, x2 - x1, y2 - y1],
            "score": float(dets.scores[i]),
        }
        if rles is not None:
            item["segmentation"] = rles[i]
        if dets.keypoints is not None:
            item["keypoints"] = [v for x, y, _ in dets.keypoints[i].tolist() for v in (x, y, 1)]
        results.append(item)
    return results


def for_results_file(item: dict[str, Any], places: int = 2, score_places: int = 5) -> dict[str, Any]:
    """A result dict rounded for a results file (pixels to ``places``, the score to ``score_places``)."""
    out = dict(item)
    out["bbox"] = [round(v, places) for v in item["bbox"]]
    out["score"] = round(item["score"], score_places)
    if "keypoints" in item:
        out["keypoints"] = [round(v, places) for v in item["keypoints"]]
    return out


def coco_ap(
    coco: Any,
    results: Sequence[dict[str, Any]],
    iou_type: str,
    image_ids: Sequence[int] | None = None,
    category_ids: Sequence[int] | None = None,
    *,
    scale: float,
) -> dict[str, float]:
    """COCOeval's summary (``STAT_NAMES``) for one IoU type, times ``scale`` (100: points, 1: 0-1).

    Scored on ``image_ids`` and ``category_ids`` (default: all of ``coco``); keypoints only on the
    categories that have keypoints. All zeros without detections; a stat with no ground truth to
    measure (pycocotools' -1) reads 0.
    """
    _, coco_eval_cls = _coco_api()
    if not results:
        return dict.fromkeys(STAT_NAMES, 0.0)
    with contextlib.redirect_stdout(io.StringIO()):
        dt = coco.loadRes([dict(r) for r in results])  # loadRes adds keys: leave the caller's dicts alone
        evaluator = coco_eval_cls(coco, dt, iou_type)
        evaluator.params.imgIds = sorted(coco.getImgIds()) if image_ids is None else list(image_ids)
        if category_ids is not None:  # the model's classes only: a person-only model is not scored on cars
            evaluator.params.catIds = list(category_ids)
        if iou_type == "keypoints":
            wanted = keypoint_category_ids(coco)  # cars have no 'num_keypoints' to score
            evaluator.params.catIds = [c for c in evaluator.params.catIds if c in wanted]
            count = len(results[0]["keypoints"]) // 3
            if count != len(evaluator.params.kpt_oks_sigmas):
                evaluator.params.kpt_oks_sigmas = np.array([OTHER_KEYPOINT_SIGMA] * count)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = [max(0.0, float(v)) * scale for v in evaluator.stats[: len(STAT_NAMES)]]
    return dict(zip(STAT_NAMES, stats, strict=True))
