"""Postprocessing equals torchvision's transform.postprocess (boxes, keypoints, paste_masks_in_image)."""

from __future__ import annotations

import numpy as np
import torch
from edgercnn.runtime.config import ModelConfig
from edgercnn.runtime.postprocess import class_ids, paste_masks, postprocess, scale_boxes, scale_keypoints
from edgercnn.runtime.preprocess import ImageTransform
from torchvision.models.detection.roi_heads import paste_masks_in_image
from torchvision.models.detection.transform import resize_boxes, resize_keypoints

from tests.builders.fixed_onnx import tiny_config, tiny_outputs


def _random_boxes(rng: np.random.Generator, k: int, h: int, w: int) -> np.ndarray:
    """Boxes of every kind: large, tiny (< 1 px), at and beyond the borders, fractional."""
    x1 = rng.uniform(-0.2 * w, w, k)
    y1 = rng.uniform(-0.2 * h, h, k)
    bw = np.exp(rng.uniform(np.log(0.3), np.log(w * 0.8), k))
    bh = np.exp(rng.uniform(np.log(0.3), np.log(h * 0.8), k))
    boxes = np.stack([x1, y1, x1 + bw, y1 + bh], 1)
    return np.clip(boxes, 0, [w, h, w, h]).astype(np.float32)


def _random_masks(rng: np.random.Generator, k: int, m: int = 28) -> np.ndarray:
    """Smooth probability maps crossing 0.5 in many places, like a mask head's output."""
    import cv2

    coarse = rng.uniform(0, 1, (k, 7, 7)).astype(np.float32)
    return np.stack([cv2.resize(c, (m, m), interpolation=cv2.INTER_CUBIC) for c in coarse]).clip(0, 1)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def test_mask_paste_matches_torchvision_paste_masks_in_image():
    rng = np.random.default_rng(0)
    h, w = 180, 240
    boxes = _random_boxes(rng, 60, h, w)
    masks = _random_masks(rng, 60)
    crops = paste_masks(masks, boxes, (h, w))
    ours = np.zeros((len(crops), h, w), bool)
    for i, c in enumerate(crops):
        ours[i, c.top : c.top + c.mask.shape[0], c.left : c.left + c.mask.shape[1]] = c.mask
    ref = paste_masks_in_image(torch.from_numpy(masks)[:, None], torch.from_numpy(boxes), (h, w))[:, 0]
    ref = (ref > 0.5).numpy()
    ious = [_iou(a, b) for a, b in zip(ours, ref, strict=True)]
    differing = int((ours != ref).sum())
    print(f"mask paste vs torchvision: min IoU {min(ious):.6f}, differing pixels {differing} of {ref.sum()}")
    assert min(ious) > 0.99
    assert differing <= max(1, ref.sum() // 10000)


def test_boxes_and_keypoints_scale_like_torchvision():
    rng = np.random.default_rng(1)
    t = ImageTransform(
        original_height=1080, original_width=1920, resized_height=216, resized_width=384, scale=0.2
    )
    boxes = _random_boxes(rng, 20, 216, 384)
    ref = resize_boxes(torch.from_numpy(boxes), [216, 384], [1080, 1920]).numpy()
    np.testing.assert_array_equal(scale_boxes(boxes, t), np.clip(ref, 0, [1920, 1080, 1920, 1080]))
    kps = rng.uniform(0, 200, (20, 17, 3)).astype(np.float32)
    ref_kps = resize_keypoints(torch.from_numpy(kps), [216, 384], [1080, 1920]).numpy()
    np.testing.assert_array_equal(scale_keypoints(kps, t), ref_kps)


def test_postprocess_reads_only_valid_rows_and_filters_at_run_time():
    raw = tiny_config(detections=8)
    config = ModelConfig.from_dict(raw, "tiny.onnx")
    outputs = tiny_outputs(raw, count=5, seed=2)  # rows 5..7 are garbage (1e6 boxes, NaN scores)
    t = ImageTransform(192, 256, 96, 128, 2.0)
    (dets,) = postprocess(outputs, [t], config)
    assert len(dets) == 5 and np.isfinite(dets.scores).all()
    assert dets.boxes.max() <= 256 and dets.masks.shape == (5, 192, 256)
    threshold = float(np.median(outputs["scores"][0, :5]))
    (high,) = postprocess(outputs, [t], config, score_threshold=threshold)
    assert len(high) == int((outputs["scores"][0, :5] >= threshold).sum())
    wanted = class_ids(["car"], config.class_names)
    (cars,) = postprocess(outputs, [t], config, classes=wanted)
    assert set(cars.label_names) <= {"car"}
    assert len(cars) == int((outputs["labels"][0, :5] == 2).sum())


def test_mask_rle_equals_pycocotools_encode():
    from edgercnn.runtime.detections import MaskCrop
    from edgercnn.runtime.rle import encode_crops
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(5)
    h, w = 40, 50
    crops = [
        MaskCrop(0, 0, np.ones((h, w), bool)),  # whole image: one run across every column
        MaskCrop(0, 10, rng.uniform(size=(h, 7)) > 0.3),  # full height: runs join across columns
        MaskCrop(5, 0, np.zeros((3, 4), bool)),  # empty
        MaskCrop(0, 0, np.zeros((0, 0), bool)),  # box outside the image
        MaskCrop(h - 6, w - 9, rng.uniform(size=(6, 9)) > 0.5),  # bottom-right corner
    ]
    crops += [MaskCrop(int(t), int(left), rng.uniform(size=(h - t, w - left)) > 0.5)
              for t, left in rng.integers(0, 30, (20, 2))]  # fmt: skip
    ours = encode_crops(crops, (h, w))
    for crop, rle in zip(crops, ours, strict=True):
        full = np.zeros((h, w), np.uint8, order="F")
        full[crop.top : crop.top + crop.mask.shape[0], crop.left : crop.left + crop.mask.shape[1]] = crop.mask
        expected = mask_utils.encode(full)
        assert rle == {"size": [h, w], "counts": expected["counts"].decode("ascii")}


def test_detections_mask_rles_decode_to_their_masks():
    from pycocotools import mask as mask_utils

    raw = tiny_config(detections=4)
    config = ModelConfig.from_dict(raw, "tiny.onnx")
    (dets,) = postprocess(tiny_outputs(raw, count=4), [ImageTransform(96, 128, 96, 128, 1.0)], config)
    rles = [{"size": r["size"], "counts": r["counts"].encode()} for r in dets.mask_rles()]
    decoded = np.stack([mask_utils.decode(r) for r in rles]).astype(bool)
    np.testing.assert_array_equal(decoded, dets.masks)
