"""COCO box / mask / keypoint AP of any model file the runtime can load (``edgercnn eval``).

The model runs through the same ``Detector`` as on the device (preprocessing, backend, mask
pasting, box rescaling), so the AP measured here is the AP the camera gets, whatever the file
(FP32, FP16, INT8 Q/DQ ONNX, or an engine where TensorRT exists). Scoring is pycocotools'
``COCOeval``; AP is reported in points (0-100).
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .errors import EdgercnnError

# COCO's per-keypoint OKS sigmas (the 17 person keypoints); other keypoint sets use a flat 0.05.
COCO_SIGMAS = [0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107,
               0.087, 0.087, 0.089, 0.089]  # fmt: skip
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")


class EvaluateError(EdgercnnError):
    """Bad evaluation input: missing images, unreadable annotations, classes that do not match."""


@dataclass
class EvalResult:
    """AP per metric (``bbox``, ``segm``, ``keypoints``) in points, with the detail COCOeval prints."""

    model: str
    images: int
    ap: dict[str, float] = field(default_factory=dict)
    stats: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _coco_api() -> tuple[Any, Any]:
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ModuleNotFoundError as exc:
        raise EvaluateError("edgercnn eval needs pycocotools (pip install 'edgercnn[coco]')") from exc
    return COCO, COCOeval


def load_annotations(ann_path: str | Path) -> Any:
    """pycocotools' COCO object, quietly, with a clear error for a missing or malformed file."""
    coco_cls, _ = _coco_api()
    path = Path(ann_path)
    if not path.is_file():
        raise EvaluateError(f"{path}: annotation file not found")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            coco = coco_cls(str(path))
    except (json.JSONDecodeError, KeyError, TypeError, AssertionError) as exc:
        raise EvaluateError(
            f"{path}: not a COCO-format annotation file ({type(exc).__name__}: {exc})"
        ) from exc
    if not coco.getImgIds():
        raise EvaluateError(f"{path}: lists no image")
    return coco


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


def detections_to_coco(image_id: int, dets: Any, categories: dict[int, int]) -> list[dict[str, Any]]:
    """One image's ``Detections`` as COCO result dicts (xywh boxes, RLE masks, flat keypoints)."""
    rles = dets.mask_rles() if dets.mask_crops is not None else None
    results = []
    for i in range(len(dets)):
        label = int(dets.labels[i])
        if label not in categories:
            continue
        x1, y1, x2, y2 = (float(v) for v in dets.boxes[i])
        item: dict[str, Any] = {
            "image_id": image_id,
            "category_id": categories[label],
            "bbox": [x1, y1, x2 - x1, y2 - y1],
            "score": float(dets.scores[i]),
        }
        if rles is not None:
            item["segmentation"] = rles[i]
        if dets.keypoints is not None:
            item["keypoints"] = [float(v) for v in np.asarray(dets.keypoints[i], dtype=np.float64).ravel()]
        results.append(item)
    return results


def coco_ap(
    coco: Any,
    results: list[dict[str, Any]],
    iou_type: str,
    image_ids: list[int],
    category_ids: list[int] | None = None,
) -> dict[str, float]:
    """COCOeval's summary for one IoU type, in points; all zeros when there is no detection."""
    _, coco_eval_cls = _coco_api()
    if not results:
        return dict.fromkeys(STAT_NAMES, 0.0)
    with contextlib.redirect_stdout(io.StringIO()):
        dt = coco.loadRes(results)
        evaluator = coco_eval_cls(coco, dt, iou_type)
        evaluator.params.imgIds = image_ids
        if category_ids is not None:  # the model's classes only: a person-only model is not scored on cars
            evaluator.params.catIds = sorted(category_ids)
        if iou_type == "keypoints":
            # Only categories with keypoints take part (cars have no 'num_keypoints' to score).
            wanted = {c["id"] for c in coco.loadCats(coco.getCatIds()) if c.get("keypoints")}
            evaluator.params.catIds = [c for c in evaluator.params.catIds if c in wanted]
            count = len(results[0]["keypoints"]) // 3
            sigmas = COCO_SIGMAS if count == len(COCO_SIGMAS) else [0.05] * count
            evaluator.params.kpt_oks_sigmas = np.array(sigmas)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = [max(0.0, float(v)) * 100.0 for v in evaluator.stats[: len(STAT_NAMES)]]
    return dict(zip(STAT_NAMES, stats, strict=False))


def evaluate_model(
    model_path: str | Path,
    images_dir: str | Path,
    ann_path: str | Path,
    limit: int | None = None,
    backend: str = "auto",
    device: str = "cpu",
    threads: int | None = None,
    progress: bool = True,
    detector: Any = None,
) -> EvalResult:
    """Run the model on the data set's images (first ``limit`` by id) and score them with pycocotools."""
    from .detector import Detector

    images_root = Path(images_dir)
    if not images_root.is_dir():
        raise EvaluateError(f"{images_root}: image folder not found")
    coco = load_annotations(ann_path)
    image_ids = sorted(coco.getImgIds())[: limit or None]
    det = detector or Detector.open(
        model_path, backend=backend, device=device, threads=threads, score_threshold=0.0
    )
    categories = category_map(det.config.class_names, coco, ann_path)
    iterator: Any = image_ids
    if progress:
        from tqdm import tqdm

        iterator = tqdm(image_ids, desc=f"eval {Path(model_path).name}", unit="img", file=sys.stderr)
    results: list[dict[str, Any]] = []
    start = time.perf_counter()
    for image_id in iterator:
        info = coco.loadImgs(image_id)[0]
        path = images_root / info["file_name"]
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise EvaluateError(f"{path}: image listed in {ann_path} is missing or unreadable")
        results += detections_to_coco(image_id, det.detect([image])[0], categories)
    seconds = time.perf_counter() - start
    if detector is None:
        det.close()
    result = EvalResult(str(model_path), len(image_ids), seconds=seconds)
    iou_types = ["bbox"]
    if det.config.has_masks:
        iou_types.append("segm")
    keypoint_categories = {c["id"] for c in coco.loadCats(coco.getCatIds()) if c.get("keypoints")}
    if det.config.has_keypoints and keypoint_categories:
        iou_types.append("keypoints")
    for iou_type in iou_types:
        scored = results
        if iou_type == "keypoints":
            scored = [r for r in results if r["category_id"] in keypoint_categories and "keypoints" in r]
        result.stats[iou_type] = coco_ap(coco, scored, iou_type, image_ids, sorted(set(categories.values())))
        result.ap[iou_type] = result.stats[iou_type]["AP"]
    return result
