"""COCO AP of an eager torchvision R-CNN on an in-memory COCO-format set, with pycocotools.

Used by the training script (the AP written into a model card), by ``edgercnn parity`` and by
the tests (which check the committed weights still reach that AP), so all measure the same thing
the same way. Only the torch half lives here: eager inference as the runtime's ``Detections``
(``export.eager``); results and scoring are the runtime's (``runtime.coco``), the code of
``edgercnn eval``, on the 0-1 scale the model cards record.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from edgercnn.export.eager import eager_detections, run_eager
from edgercnn.runtime.coco import coco_ap, coco_from_dict, detections_to_coco, keypoint_category_ids
from edgercnn.runtime.contract import head_of
from edgercnn.runtime.detections import Detections

CARD_STATS = ("AP", "AP50", "AP75")  # what a model card records per IoU type


def coco_aps(kind: str, gt: dict[str, Any], detections: Sequence[Detections]) -> dict[str, dict[str, float]]:
    """AP, AP50 and AP75 (0-1) for every IoU type of ``kind``; one ``Detections`` per ``gt`` image.

    Keypoint R-CNN is evaluated on the person category only, for boxes as well as keypoints,
    since it detects nothing else.
    """
    image_ids = [int(info["id"]) for info in gt["images"]]
    results: list[dict[str, Any]] = []
    for image_id, dets in zip(image_ids, detections, strict=True):
        results += detections_to_coco(image_id, dets)
    coco = coco_from_dict(gt)
    cat_ids = sorted(keypoint_category_ids(coco)) if kind == "keypointrcnn" else None
    iou_types = head_of(kind).iou_types  # the model-file contract's head table
    aps = {iou: coco_ap(coco, results, iou, category_ids=cat_ids, scale=1.0) for iou in iou_types}
    return {iou: {k: stats[k] for k in CARD_STATS} for iou, stats in aps.items()}


def evaluate_model(
    model: torch.nn.Module,
    kind: str,
    gt: dict[str, Any],
    images: Sequence[np.ndarray],
    batch_size: int = 4,
) -> dict[str, dict[str, float]]:
    """Every AP that applies to ``kind`` (fasterrcnn: bbox; maskrcnn: +segm; keypointrcnn: +keypoints).

    ``images`` are BGR arrays in the order of ``gt["images"]``.
    """
    if len(gt["images"]) != len(images):
        raise ValueError(f"{len(images)} images for {len(gt['images'])} ground-truth entries")
    outputs = run_eager(model, images, batch_size)
    detections = [eager_detections(out, image.shape[:2]) for out, image in zip(outputs, images, strict=True)]
    return coco_aps(kind, gt, detections)
