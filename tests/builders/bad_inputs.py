"""Bad inputs a new user hands the commands: broken images, contradicting models, broken checkpoints.

Each builder writes one file into a folder and returns its path; all are small and fast (the tiny
ONNX detector of ``onnx_detector``, the bundled reference checkpoint edited in memory).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx

from tests.builders.onnx_detector import model_config, scene_image
from tests.paths import REPO_ROOT

REF_CARD = REPO_ROOT / "models" / "ref_fasterrcnn.json"
REF_WEIGHTS = REPO_ROOT / "models" / "ref_fasterrcnn.pth"


def good_image(path: Path, size: int = 64) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), scene_image(np.random.default_rng(0), size))
    return path


def truncated_image(path: Path) -> Path:
    """A JPEG or PNG (by suffix) cut to half its length: OpenCV decodes it half grey, silently."""
    ok, encoded = cv2.imencode(path.suffix, scene_image(np.random.default_rng(1), 64))
    assert ok
    data = encoded.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: len(data) // 2])
    return path


def text_file(path: Path, text: str = "not what the name says\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def model_with_config(source: Path, path: Path, change: Callable[[dict[str, Any]], None] | None) -> Path:
    """The tiny detector with its ``edgercnn.config`` edited by ``change`` (None: removed)."""
    model = onnx.load(str(source))
    config = model_config()
    del model.metadata_props[:]
    if change is not None:
        change(config)
        onnx.helper.set_model_props(model, {"edgercnn.config": json.dumps(config)})
    onnx.save(model, str(path))
    return path


def coco_set(folder: Path, change: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """A one-image COCO set (``folder/images/a.png`` + ``folder/ann.json``), edited by ``change``."""
    good_image(folder / "images" / "a.png")
    dataset: dict[str, Any] = {
        "images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 64}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [4, 4, 20, 20], "area": 400, "iscrowd": 0}
        ],
        "categories": [{"id": 1, "name": "thing"}],
    }
    if change is not None:
        change(dataset)
    (folder / "ann.json").write_text(json.dumps(dataset))
    return folder / "ann.json"


def state_dict_with(path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    """The reference checkpoint with ``change`` applied to its tensors (torch imported only here)."""
    import torch

    state = torch.load(REF_WEIGHTS, map_location="cpu", weights_only=True)
    change(state)
    torch.save(state, path)
    return path


def card_with_weights(folder: Path, weights_sha256: str) -> Path:
    """A copy of the reference card beside a copy of its weights, claiming another hash."""
    folder.mkdir(parents=True, exist_ok=True)
    card = json.loads(REF_CARD.read_text())
    card["weights_sha256"] = weights_sha256
    shutil.copyfile(REF_WEIGHTS, folder / card["weights"])
    (folder / REF_CARD.name).write_text(json.dumps(card))
    return folder / REF_CARD.name
