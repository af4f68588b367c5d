"""The tensors of a detection model on Triton, and their packing to and from ``Detections``.

A client sends one image per batch row, either encoded (``IMAGE``: JPEG/PNG bytes, TYPE_STRING
dims [1]) or raw (``FRAME``: BGR uint8, dims [H, W, 3]); it gets per row the padded detections
(``num_detections`` then ``detections_per_img`` rows of ``boxes``, ``scores``, ``labels``, plus
``masks`` as COCO compressed RLE JSON strings or ``keypoints``) in original image pixels, and the
``image_size`` they refer to. Rows are padded to a fixed count so that Triton can batch requests.
The ensemble's pre step hands the graph input and ``transform`` (how the image was resized) to
the post step. Only numpy and OpenCV here: both the server models and the clients import it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import ModelConfig
from ..detections import Detections
from ..errors import SourceError
from ..images import ImageConversionError, decode_image_bytes
from ..preprocess import ImageTransform

IMAGE = "IMAGE"  # encoded image bytes
FRAME = "FRAME"  # raw BGR uint8 (H, W, 3)
TRANSFORM = "transform"  # ensemble pre -> post: original h, w, resized h, w, scale
TRANSFORM_SIZE = 5
IMAGE_SIZE = "image_size"
DETECTION_OUTPUTS = ("num_detections", "boxes", "scores", "labels")
CONFIG_PARAMETER = "edgercnn.config"  # the model's config JSON, in every generated config.pbtxt
ROLE_PARAMETER = "edgercnn.role"


def detection_outputs(config: ModelConfig) -> list[tuple[str, str, list[int]]]:
    """(name, Triton datatype, dims without the batch axis) of each detection output."""
    k = config.detections_per_img
    specs = [
        ("num_detections", "INT32", [1]),
        ("boxes", "FP32", [k, 4]),
        ("scores", "FP32", [k]),
        ("labels", "INT64", [k]),
        (IMAGE_SIZE, "INT32", [2]),
    ]
    if "masks" in config.outputs:
        specs.append(("masks", "BYTES", [k]))
    if config.has_keypoints:
        specs.append(("keypoints", "FP32", [k, max(len(config.keypoint_names), 1), 3]))
    return specs


def keypoint_count(config: ModelConfig) -> int:
    return max(len(config.keypoint_names), 1)


def decode_image(data: bytes, name: str) -> np.ndarray:
    """JPEG/PNG bytes -> BGR uint8, or one line saying which row could not be decoded."""
    try:
        image, _ = decode_image_bytes(bytes(data))  # the one loader's checks: truncation, depth, size
    except ImageConversionError as exc:
        raise SourceError(f"{name}: {len(data)} bytes are not a usable image ({exc})") from None
    return image


def images_from_inputs(encoded: np.ndarray | None, frames: np.ndarray | None, name: str) -> list[np.ndarray]:
    """One request's rows -> BGR images. Exactly one of ``IMAGE`` / ``FRAME`` must be given."""
    if (encoded is None) == (frames is None):
        raise SourceError(f"{name}: send exactly one of the inputs {IMAGE} (encoded bytes) or {FRAME} (BGR)")
    if frames is not None:
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise SourceError(
                f"{name}: {FRAME} must be uint8 [batch, H, W, 3], got {frames.dtype} {frames.shape}"
            )
        return [np.ascontiguousarray(f) for f in frames]
    assert encoded is not None
    rows = encoded.reshape(encoded.shape[0], -1)
    return [decode_image(bytes(row[0]), f"{name} row {i}") for i, row in enumerate(rows)]


def transform_vector(t: ImageTransform) -> np.ndarray:
    return np.array(
        [t.original_height, t.original_width, t.resized_height, t.resized_width, t.scale], dtype=np.float64
    )


def transform_from_vector(v: np.ndarray) -> ImageTransform:
    oh, ow, rh, rw, scale = (float(x) for x in np.asarray(v, dtype=np.float64).reshape(-1)[:TRANSFORM_SIZE])
    return ImageTransform(int(oh), int(ow), int(rh), int(rw), scale)


def pack_detections(dets: list[Detections], config: ModelConfig) -> dict[str, np.ndarray]:
    """Detections of a batch -> the padded output tensors, one row per image."""
    k, n = config.detections_per_img, len(dets)
    out: dict[str, np.ndarray] = {
        "num_detections": np.zeros((n, 1), np.int32),
        "boxes": np.zeros((n, k, 4), np.float32),
        "scores": np.zeros((n, k), np.float32),
        "labels": np.zeros((n, k), np.int64),
        IMAGE_SIZE: np.zeros((n, 2), np.int32),
    }
    masks = "masks" in config.outputs
    if masks:
        out["masks"] = np.full((n, k), b"", dtype=object)
    if config.has_keypoints:
        out["keypoints"] = np.zeros((n, k, keypoint_count(config), 3), np.float32)
    for i, d in enumerate(dets):
        m = min(len(d), k)
        out["num_detections"][i, 0] = m
        out["boxes"][i, :m] = d.boxes[:m]
        out["scores"][i, :m] = d.scores[:m]
        out["labels"][i, :m] = d.labels[:m]
        out[IMAGE_SIZE][i] = d.image_size
        if masks and d.mask_crops is not None:
            for j, rle in enumerate(d.mask_rles()[:m]):  # type: ignore[index]
                out["masks"][i, j] = json.dumps(rle, separators=(",", ":")).encode()
        if "keypoints" in out and d.keypoints is not None:
            out["keypoints"][i, :m] = d.keypoints[:m]
    return out


@dataclass
class RemoteDetections:
    """Detections of one image as they come back from Triton: masks stay COCO RLE dicts."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    image_size: tuple[int, int]
    mask_rles: list[dict[str, Any]] | None = None
    keypoints: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.boxes.shape[0])


def unpack_detections(outputs: dict[str, np.ndarray]) -> list[RemoteDetections]:
    """The padded output tensors of a batch -> one ``RemoteDetections`` per row."""
    results = []
    for i, count in enumerate(outputs["num_detections"].reshape(-1).tolist()):
        m = int(count)
        rles = None
        if "masks" in outputs:
            rles = [json.loads(_as_bytes(v)) for v in outputs["masks"][i, :m]]
        keypoints = outputs["keypoints"][i, :m] if "keypoints" in outputs else None
        h, w = (int(v) for v in outputs[IMAGE_SIZE][i])
        results.append(
            RemoteDetections(
                boxes=outputs["boxes"][i, :m],
                scores=outputs["scores"][i, :m],
                labels=outputs["labels"][i, :m].astype(np.int64),
                image_size=(h, w),
                mask_rles=rles,
                keypoints=keypoints,
            )
        )
    return results


def _as_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()
