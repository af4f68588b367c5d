"""COCO box / mask / keypoint AP of any model file the runtime can load (``edgercnn eval``).

The model runs through the same ``Detector`` as on the device (preprocessing, backend, mask
pasting, box rescaling), so the AP measured here is the AP the camera gets, whatever the file
(FP32, FP16, INT8 Q/DQ ONNX, or an engine where TensorRT exists). Scoring is pycocotools'
``COCOeval`` through ``runtime.coco`` (the build host's AP uses it too); AP is reported in points
(0-100).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .coco import (
    EvaluateError,
    category_map,
    check_annotations,
    coco_ap,
    detections_to_coco,
    keypoint_category_ids,
    load_annotations,
)
from .images import ImageConversionError, load_image
from .validators import check_positive_int

__all__ = ["EvalResult", "EvaluateError", "evaluate_model"]


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
    if limit is not None:
        check_positive_int(limit, "limit")
    coco = load_annotations(ann_path)
    image_ids = sorted(coco.getImgIds())[: limit or None]
    det = detector or Detector.open(
        model_path, backend=backend, device=device, threads=threads, score_threshold=0.0
    )
    try:
        check_annotations(coco.dataset, Path(ann_path), ["segm"] if det.config.has_masks else [])
        missing = [
            info["file_name"]
            for info in coco.loadImgs(image_ids)
            if not (images_root / info["file_name"]).is_file()
        ]
        if missing:
            raise EvaluateError(
                f"{ann_path}: {len(missing)} listed image(s) not in {images_root} (first: {missing[0]})"
            )
    except BaseException:
        if detector is None:
            det.close()
        raise
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
        try:
            image = load_image(path)
        except ImageConversionError as exc:
            raise EvaluateError(f"{exc} (an image listed in {ann_path})") from None
        results += detections_to_coco(image_id, det.detect([image])[0], categories)
    seconds = time.perf_counter() - start
    if detector is None:
        det.close()
    result = EvalResult(str(model_path), len(image_ids), seconds=seconds)
    iou_types = ["bbox"]
    if det.config.has_masks:
        iou_types.append("segm")
    keypoint_categories = keypoint_category_ids(coco)
    if det.config.has_keypoints and keypoint_categories:
        iou_types.append("keypoints")
    for iou_type in iou_types:
        scored = results
        if iou_type == "keypoints":
            scored = [r for r in results if r["category_id"] in keypoint_categories and "keypoints" in r]
        category_ids = sorted(set(categories.values()))
        result.stats[iou_type] = coco_ap(coco, scored, iou_type, image_ids, category_ids, scale=100.0)
        result.ap[iou_type] = result.stats[iou_type]["AP"]
    return result
