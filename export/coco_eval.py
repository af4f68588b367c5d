"""COCO AP of an eager torchvision R-CNN on a COCO-format set, with pycocotools.

Used by the training script (the AP written into a model card) and by the tests (which check the
committed weights still reach that AP), so both measure the same thing the same way.
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

IOU_TYPES = {"fasterrcnn": ["bbox"], "maskrcnn": ["bbox", "segm"], "keypointrcnn": ["bbox", "keypoints"]}
MASK_THRESHOLD = 0.5


def bgr_to_tensor(image: np.ndarray) -> torch.Tensor:
    """OpenCV BGR uint8 HxWx3 -> torchvision's RGB float CxHxW in [0, 1]."""
    rgb = np.ascontiguousarray(image[:, :, ::-1])
    return torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255.0)


@torch.inference_mode()
def predict(
    model: torch.nn.Module, images: Sequence[np.ndarray], batch_size: int = 4
) -> list[dict[str, Any]]:
    """Eager predictions (eval mode) for BGR images, as numpy arrays."""
    model.eval()
    outputs: list[dict[str, Any]] = []
    for start in range(0, len(images), batch_size):
        batch = [bgr_to_tensor(im) for im in images[start : start + batch_size]]
        for out in model(batch):
            outputs.append({k: v.cpu().numpy() for k, v in out.items()})
    return outputs


def predictions_to_coco(
    outputs: Sequence[dict[str, Any]],
    image_ids: Sequence[int],
    label_to_category: dict[int, int] | None = None,
) -> list[dict[str, Any]]:
    """COCO result entries (bbox, and segmentation / keypoints where the model gives them)."""
    results: list[dict[str, Any]] = []
    for out, image_id in zip(outputs, image_ids, strict=True):
        masks = out.get("masks")
        for i, (box, score, label) in enumerate(zip(out["boxes"], out["scores"], out["labels"], strict=True)):
            x0, y0, x1, y1 = (float(v) for v in box)
            category = label_to_category.get(int(label), int(label)) if label_to_category else int(label)
            entry: dict[str, Any] = {
                "image_id": int(image_id),
                "category_id": category,
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "score": float(score),
            }
            if masks is not None:
                binary = np.asfortranarray((masks[i, 0] > MASK_THRESHOLD).astype(np.uint8))
                rle = mask_utils.encode(binary)
                rle["counts"] = rle["counts"].decode("ascii")
                entry["segmentation"] = rle
            if "keypoints" in out:
                kp = out["keypoints"][i].copy()
                kp[:, 2] = 1.0  # COCO results carry a visibility of 1; the score is the box score
                entry["keypoints"] = [float(v) for v in kp.ravel()]
            results.append(entry)
    return results


def _coco_from_dict(dataset: dict[str, Any]) -> COCO:
    coco = COCO()
    coco.dataset = copy.deepcopy(dataset)
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def coco_ap(
    gt: dict[str, Any], results: list[dict[str, Any]], iou_type: str, cat_ids: Sequence[int] | None = None
) -> dict[str, float]:
    """AP, AP50 and AP75 (pycocotools) of ``results`` against the ground truth dict ``gt``."""
    if not results:
        return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}
    coco_gt = _coco_from_dict(gt)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(copy.deepcopy(results))
        evaluator = COCOeval(coco_gt, coco_dt, iou_type)
        evaluator.params.imgIds = sorted(coco_gt.getImgIds())
        if cat_ids is not None:
            evaluator.params.catIds = list(cat_ids)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = evaluator.stats
    return {"AP": float(stats[0]), "AP50": float(stats[1]), "AP75": float(stats[2])}


def evaluate_model(
    model: torch.nn.Module,
    kind: str,
    gt: dict[str, Any],
    images: Sequence[np.ndarray],
    batch_size: int = 4,
) -> dict[str, dict[str, float]]:
    """Every AP that applies to ``kind`` (fasterrcnn: bbox; maskrcnn: +segm; keypointrcnn: +keypoints).

    ``images`` are BGR arrays in the order of ``gt["images"]``. Keypoint R-CNN is evaluated on the
    person category only, for boxes as well as keypoints, since it detects nothing else.
    """
    image_ids = [int(info["id"]) for info in gt["images"]]
    if len(image_ids) != len(images):
        raise ValueError(f"{len(images)} images for {len(image_ids)} ground-truth entries")
    outputs = predict(model, images, batch_size)
    results = predictions_to_coco(outputs, image_ids)
    person_ids = [c["id"] for c in gt["categories"] if c.get("keypoints")]
    cat_ids = person_ids if kind == "keypointrcnn" else None
    return {iou: coco_ap(gt, results, iou, cat_ids) for iou in IOU_TYPES[kind]}
