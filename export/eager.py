"""torchvision eager inference, and its output as the runtime's ``Detections`` (build host: torch).

The reference side of every comparison (``edgercnn parity``, the AP of a trained model) is
torchvision itself. Its output, and the deploy graph's rebuilt into the same form, becomes the
runtime's ``Detections`` here, so that the runtime's own matching (``runtime.matching``) and
COCO scoring (``runtime.coco``) judge the reference exactly as they judge the exported model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from edgercnn.runtime.detections import Detections, MaskCrop
from edgercnn.runtime.postprocess import MASK_THRESHOLD

# torchvision's per-image output as numpy: boxes, scores, labels[, masks (K, 1, H, W) probabilities,
# keypoints (K, P, 3) with visibility 1, keypoints_scores (K, P)]
Outputs = list[dict[str, np.ndarray]]


def bgr_to_tensor(image: np.ndarray) -> torch.Tensor:
    """OpenCV BGR uint8 HxWx3 -> torchvision's RGB float CxHxW in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image[:, :, ::-1])).permute(2, 0, 1).float().div_(255.0)


def reset_pooler_scales(model: torch.nn.Module) -> None:
    """torchvision caches RoI pooler scales on first use; forget them so the current size decides."""
    for module in model.modules():
        if hasattr(module, "scales") and hasattr(module, "map_levels"):
            module.scales, module.map_levels = None, None


@torch.inference_mode()
def run_eager(model: torch.nn.Module, images: Sequence[np.ndarray], batch: int) -> Outputs:
    """torchvision's own inference (eval mode) on BGR images, ``batch`` at a time, as numpy."""
    model.eval()
    reset_pooler_scales(model)
    outputs: Outputs = []
    for start in range(0, len(images), batch):
        for out in model([bgr_to_tensor(im) for im in images[start : start + batch]]):
            outputs.append({k: v.cpu().numpy() for k, v in out.items()})
    return outputs


def mask_crop(mask: np.ndarray) -> MaskCrop:
    """A full-image boolean mask as the runtime's crop: the smallest rectangle holding its pixels."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return MaskCrop(0, 0, np.zeros((0, 0), dtype=bool))
    cols = np.flatnonzero(mask.any(axis=0))
    top, left = int(rows[0]), int(cols[0])
    return MaskCrop(top, left, mask[top : int(rows[-1]) + 1, left : int(cols[-1]) + 1])


def eager_detections(
    output: Mapping[str, np.ndarray], image_size: tuple[int, int], class_names: tuple[str, ...] = ()
) -> Detections:
    """One image's torchvision output as ``Detections`` (masks binarized as the runtime pastes them).

    Keypoints get the runtime's layout: x, y and the keypoint's score (torchvision keeps a
    visibility of 1 there and the scores apart).
    """
    crops = None
    if "masks" in output:
        crops = [mask_crop(np.asarray(m)[0] > MASK_THRESHOLD) for m in output["masks"]]
    keypoints = None
    if "keypoints" in output:
        keypoints = np.array(output["keypoints"], copy=True)
        if "keypoints_scores" in output:
            keypoints[..., 2] = output["keypoints_scores"]
    return Detections(
        boxes=np.asarray(output["boxes"]),
        scores=np.asarray(output["scores"]),
        labels=np.asarray(output["labels"]),
        class_names=tuple(class_names),
        image_size=(int(image_size[0]), int(image_size[1])),
        mask_crops=crops,
        keypoints=keypoints,
    )
