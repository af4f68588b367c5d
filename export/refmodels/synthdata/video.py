"""A short street video: people walking and vehicles driving past, with per-frame COCO ground truth.

The demo and the runtime's video path need a clip with known content; it is rendered from the
same scene code as the data set (one background, objects moving between frames, light drifting).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from edgercnn.runtime.errors import EdgercnnError

from .background import make_background
from .coco import build_coco_dict, scene_annotations
from .dataset import GENERATOR_VERSION
from .person import PersonPose
from .scene import (
    ObjectSpec,
    PersonSpec,
    PlateSpec,
    VehicleSpec,
    compose,
    random_person,
    random_plate,
    random_vehicle,
)


class VideoWriteError(EdgercnnError):
    """OpenCV could not open a writer for the requested file."""

    exit_code = 1


def _walkers(
    rng: np.random.Generator, width: int, height: int, horizon: int, count: int
) -> list[dict[str, Any]]:
    movers = []
    for _ in range(count):
        spec = random_person(rng, width, height, horizon)
        speed = float(rng.uniform(8, 20)) * spec.height / 100 * rng.choice([-1, 1])  # px per second
        movers.append({"spec": spec, "vx": speed, "phase": float(rng.uniform(0, 2 * np.pi))})
    return movers


def _drivers(
    rng: np.random.Generator, width: int, height: int, horizon: int, count: int
) -> list[dict[str, Any]]:
    movers = []
    for _ in range(count):
        spec = random_vehicle(rng, width, height, horizon)
        spec.front = False
        direction = 1 if spec.facing_right else -1
        movers.append({"spec": spec, "vx": direction * float(rng.uniform(30, 70)) * spec.width / 150})
    return movers


def render_video_frames(
    seed: int, seconds: float, fps: float, width: int, height: int
) -> tuple[list[np.ndarray], dict[str, Any]]:
    """BGR frames and a COCO dict whose images are the frames (``frame_000000`` ...)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 99]))
    background, horizon = make_background(rng, width, height)
    walkers = _walkers(rng, width, height, horizon, 4)
    drivers = _drivers(rng, width, height, horizon, 2)
    parked = random_vehicle(rng, width, height, horizon)
    parked.front = True
    fixed: list[ObjectSpec] = [parked, random_plate(rng, width, height, horizon)]
    gains = rng.uniform(0.7, 1.25, size=2)
    noise = np.random.default_rng(np.random.SeedSequence([seed, 100]))
    frames: list[np.ndarray] = []
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for index in range(round(seconds * fps)):
        t = index / fps
        specs: list[ObjectSpec] = list(fixed)
        for w in walkers:
            base: PersonSpec = w["spec"]
            x = (base.foot_x + w["vx"] * t) % (width * 1.2) - width * 0.1
            pose = PersonPose.walking(w["phase"] + t * 2 * np.pi * 1.2, base.pose.yaw)
            specs.append(dataclasses.replace(base, foot_x=x, pose=pose))
        for d in drivers:
            car: VehicleSpec = d["spec"]
            span = width + 2 * car.width
            x = (car.x + d["vx"] * t + car.width) % span - car.width
            specs.append(dataclasses.replace(car, x=x))
        specs.sort(
            key=lambda s: -1.0 if isinstance(s, PlateSpec) else getattr(s, "foot_y", getattr(s, "bottom", 0))
        )
        scene = compose(background, specs)
        light = gains[0] + (gains[1] - gains[0]) * 0.5 * (1 - math.cos(math.pi * t / max(seconds, 1e-6)))
        img = scene.image.astype(np.float32) * light + noise.normal(0, 3, size=scene.image.shape)
        frame = np.clip(img, 0, 255).astype(np.uint8)
        frames.append(frame)
        image_id = index + 1
        images.append({"id": image_id, "file_name": f"frame_{index:06d}", "width": width, "height": height})
        annotations += scene_annotations(scene, image_id, len(annotations) + 1)
    info = {"description": "edgercnn synthetic street video", "generator_version": GENERATOR_VERSION,
            "seed": seed, "fps": fps, "size": [width, height]}  # fmt: skip
    return frames, build_coco_dict(images, annotations, info)


def write_video(
    path: str | Path,
    seed: int = 0,
    seconds: float = 9.0,
    fps: float = 10.0,
    width: int = 384,
    height: int = 288,
) -> Path:
    """Write the clip as mp4v and its ground truth beside it (``<name>.json``); return the json path."""
    path = Path(path)
    frames, coco = render_video_frames(seed, seconds, fps, width, height)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise VideoWriteError(f"{path}: OpenCV cannot write an mp4v video here")
    for frame in frames:
        writer.write(frame)
    writer.release()
    gt_path = path.with_suffix(".json")
    gt_path.write_text(json.dumps(coco))
    return gt_path
