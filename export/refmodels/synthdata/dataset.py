"""Splits of the synthetic set, each image reproducible alone from (seed, split, index).

Every image has its own random stream, so a test can regenerate the first 24 validation
images without rendering the rest, and the calibration images never repeat training ones.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from edgercnn.runtime.errors import EdgercnnError
from tqdm import tqdm

from .coco import build_coco_dict, scene_annotations
from .scene import Scene, render_scene

GENERATOR_VERSION = "1"
SPLITS = {"train": 0, "val": 1, "calib": 2}
JPEG_QUALITY = 95


class SynthDataError(EdgercnnError):
    """Bad arguments for the generator (unknown split, bad size)."""

    exit_code = 1


def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    if split not in SPLITS:
        raise SynthDataError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    return np.random.default_rng(np.random.SeedSequence([seed, SPLITS[split], index]))


def encode_jpeg(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise SynthDataError("OpenCV could not encode a JPEG")
    return buf.tobytes()


def render_split_image(seed: int, split: str, index: int, width: int, height: int) -> tuple[Scene, bytes]:
    """Scene ``index`` of ``split``; its image is the decoded JPEG, i.e. exactly what is on disk."""
    scene = render_scene(scene_rng(seed, split, index), width, height)
    data = encode_jpeg(scene.image)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if decoded is None:
        raise SynthDataError("OpenCV could not decode the JPEG it just encoded")
    scene.image = decoded
    return scene, data


def file_name(split: str, index: int) -> str:
    return f"{split}_{index:06d}.jpg"


def build_split(
    seed: int, split: str, count: int, width: int, height: int, progress: bool = False
) -> tuple[dict[str, Any], list[np.ndarray], list[bytes]]:
    """COCO dict, decoded BGR images and JPEG bytes of the first ``count`` images of a split."""
    images_info: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    decoded: list[np.ndarray] = []
    encoded: list[bytes] = []
    for index in tqdm(range(count), desc=f"synth {split}", unit="img", disable=not progress):
        scene, data = render_split_image(seed, split, index, width, height)
        image_id = index + 1
        images_info.append(
            {"id": image_id, "file_name": file_name(split, index), "width": width, "height": height}
        )
        annotations += scene_annotations(scene, image_id, len(annotations) + 1)
        decoded.append(scene.image)
        encoded.append(data)
    info = {
        "description": "edgercnn synthetic surveillance scenes",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "split": split,
        "size": [width, height],
    }
    return build_coco_dict(images_info, annotations, info), decoded, encoded


def generate_dataset(
    out_dir: str | Path, counts: dict[str, int], seed: int, width: int, height: int, progress: bool = True
) -> dict[str, Any]:
    """Write ``out_dir/<split>/*.jpg`` and ``out_dir/annotations/<split>.json``; return statistics."""
    out = Path(out_dir)
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    stats: dict[str, Any] = {"seed": seed, "size": [width, height], "splits": {}}
    start = time.perf_counter()
    for split, count in counts.items():
        if count <= 0:
            continue
        t0 = time.perf_counter()
        coco, _, encoded = build_split(seed, split, count, width, height, progress)
        (out / split).mkdir(exist_ok=True)
        for info, data in zip(coco["images"], encoded, strict=True):
            (out / split / info["file_name"]).write_bytes(data)
        (out / "annotations" / f"{split}.json").write_text(json.dumps(coco))
        per_cat: dict[str, int] = {}
        names = {c["id"]: c["name"] for c in coco["categories"]}
        for ann in coco["annotations"]:
            per_cat[names[ann["category_id"]]] = per_cat.get(names[ann["category_id"]], 0) + 1
        stats["splits"][split] = {
            "images": count,
            "instances": per_cat,
            "bytes": sum(len(d) for d in encoded),
            "seconds": round(time.perf_counter() - t0, 2),
        }
    stats["seconds"] = round(time.perf_counter() - start, 2)
    (out / "stats.json").write_text(json.dumps(stats, indent=2))
    return stats


def write_calibration_set(out_dir: str | Path, seed: int, count: int, width: int, height: int) -> Path:
    """Calibration images (JPEG) plus ``manifest.json`` (files, sha256, seed, split, size, version).

    INT8 calibration reads these; the manifest lets it check it got exactly what was generated.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for index in tqdm(range(count), desc="synth calib", unit="img"):
        _, data = render_split_image(seed, "calib", index, width, height)
        name = file_name("calib", index)
        (out / name).write_bytes(data)
        files.append({"file": name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)})
    manifest = {
        "generator": "export.synthdata",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "split": "calib",
        "size": {"width": width, "height": height},
        "format": f"jpeg q{JPEG_QUALITY}, BGR as OpenCV decodes it",
        "count": count,
        "files": files,
    }
    path = out / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path
