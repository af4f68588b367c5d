"""Procedural surveillance scenes (people, vehicles, licence plates) with COCO annotations.

Real trained detectors cannot be downloaded here, so the project renders its own data set:
numpy + OpenCV only, deterministic from a seed, with instance masks for every object and the 17
COCO keypoints for people, so Faster, Mask and Keypoint R-CNN can all be trained and evaluated.
"""

from __future__ import annotations

from .coco import CATEGORIES, build_coco_dict
from .dataset import GENERATOR_VERSION, SPLITS, generate_dataset, render_split_image
from .scene import Scene, SceneObject, render_scene

__all__ = [
    "CATEGORIES",
    "GENERATOR_VERSION",
    "SPLITS",
    "Scene",
    "SceneObject",
    "build_coco_dict",
    "generate_dataset",
    "render_scene",
    "render_split_image",
]
