"""Calibration sets: build one from images or videos, and feed one through the runtime's preprocessing.

INT8 ranges are only as good as the images they are measured on. For a fixed camera the right
images are the camera's own frames, sampled evenly over a long recording (day, night, busy,
empty) rather than the first N frames, and with near-identical frames dropped so that a static
scene does not dominate the statistics. The set is written as lossless PNG files plus a
``manifest.json``; at quantization time every image goes through ``runtime.preprocess``'s
``prepare_batch``, the exact code that feeds the model on the device, so calibration sees the
same bytes as inference.

This module is torch-free on purpose: ``edgercnn calibrate`` runs on the camera itself.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .errors import EdgercnnError
from .files import IMAGE_SUFFIXES, VIDEO_SUFFIXES, sha256_file
from .images import ImageConversionError, load_image
from .validators import check_non_negative_float, check_output_dir, check_positive_int

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
# Thumbnail side used to compare frames: small enough to ignore sensor noise and compression
# artefacts, large enough that a person entering the scene changes it.
THUMB_SIDE = 64


class CalibrationError(EdgercnnError):
    """Bad calibration input (missing files, unreadable images or videos, empty sets)."""


@dataclass
class CalibrationItem:
    """One image of a calibration set and where it came from."""

    file: str
    source: str
    frame: int | None
    height: int
    width: int
    sha256: str


@dataclass
class CalibrationSet:
    """What ``build_calibration_set`` wrote, and what it dropped as duplicates."""

    directory: Path
    items: list[CalibrationItem] = field(default_factory=list)
    considered: int = 0
    duplicates: int = 0

    def manifest(self, dedup_threshold: float) -> dict[str, Any]:
        return {
            "format_version": MANIFEST_VERSION,
            "count": len(self.items),
            "considered": self.considered,
            "duplicates_dropped": self.duplicates,
            "dedup_threshold": dedup_threshold,
            "images": [item.__dict__ for item in self.items],
        }


# ----------------------------------------------------------------------------- sources


def expand_sources(sources: Sequence[str | Path]) -> tuple[list[Path], list[Path]]:
    """Split folders, globs and files into (images, videos), each sorted, duplicates removed."""
    images: list[Path] = []
    videos: list[Path] = []
    for source in sources:
        text = str(source)
        if any(ch in text for ch in "*?["):
            matches = [Path(p) for p in sorted(glob.glob(text, recursive=True))]
            if not matches:
                raise CalibrationError(f"{text}: the pattern matches no file")
        else:
            path = Path(text)
            if not path.exists():
                raise CalibrationError(f"{path}: no such file or folder")
            matches = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        found = 0
        for match in matches:
            suffix = match.suffix.lower()
            if suffix in IMAGE_SUFFIXES:
                images.append(match)
                found += 1
            elif suffix in VIDEO_SUFFIXES:
                videos.append(match)
                found += 1
            elif not Path(text).is_dir():
                kinds = f"an image ({', '.join(IMAGE_SUFFIXES)}) or a video ({', '.join(VIDEO_SUFFIXES)})"
                raise CalibrationError(f"{match}: not {kinds}")
        if found == 0:
            raise CalibrationError(f"{text}: contains no image or video file")
    return sorted(set(images)), sorted(set(videos))


def evenly_spaced(total: int, count: int) -> list[int]:
    """``count`` indices spread over ``range(total)``, centred in equal segments (all if fewer)."""
    if total <= 0 or count <= 0:
        return []
    if count >= total:
        return list(range(total))
    return sorted({int((i + 0.5) * total / count) for i in range(count)})


def _video_frame_count(path: Path) -> int:
    """Frames in a video; counts by decoding when the container does not say (some streams lie)."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise CalibrationError(f"{path}: OpenCV cannot open this video")
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    if total <= 0:
        while capture.grab():
            total += 1
    capture.release()
    return total


def sample_video_frames(path: Path, count: int) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``count`` frames spread evenly over the whole video, as (frame index, BGR image).

    Frames are read sequentially (``grab`` skips decoding to BGR) rather than by seeking,
    because seeking lands on key frames in many codecs and would return the wrong frame.
    """
    wanted = evenly_spaced(_video_frame_count(path), count)
    if not wanted:
        raise CalibrationError(f"{path}: the video has no frames")
    capture = cv2.VideoCapture(str(path))
    targets = iter(wanted)
    target = next(targets, None)
    index = 0
    while target is not None and capture.grab():
        if index == target:
            ok, frame = capture.retrieve()
            if ok and frame is not None:
                yield index, frame
            target = next(targets, None)
        index += 1
    capture.release()


def read_image_bgr(path: Path) -> np.ndarray:
    """Decode an image as OpenCV does on the device (BGR, uint8, 3 channels)."""
    try:
        return load_image(path)
    except ImageConversionError as exc:
        raise CalibrationError(str(exc)) from None


# ----------------------------------------------------------------------------- deduplication


def thumbnail(image_bgr: np.ndarray) -> np.ndarray:
    """Small grey, blurred copy of a frame: the unit of 'near-identical'."""
    grey = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(grey, (THUMB_SIDE, THUMB_SIDE), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(small, (3, 3), 0).astype(np.float32)


class NearDuplicateFilter:
    """Keeps a frame only if its thumbnail differs from every kept one by >= ``threshold`` grey levels.

    The mean absolute difference of blurred thumbnails is cheap, insensitive to noise and to
    compression, and is what 'nothing happened between these two frames' means for a fixed camera.
    """

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._kept: list[np.ndarray] = []

    def is_new(self, image_bgr: np.ndarray) -> bool:
        thumb = thumbnail(image_bgr)
        if self.threshold > 0:
            for kept in self._kept:
                if float(np.mean(np.abs(kept - thumb))) < self.threshold:
                    return False
        self._kept.append(thumb)
        return True


# ----------------------------------------------------------------------------- building


def build_calibration_set(
    sources: Sequence[str | Path],
    out_dir: str | Path,
    count: int = 64,
    frames_per_video: int | None = None,
    dedup_threshold: float = 2.0,
) -> CalibrationSet:
    """Write up to ``count`` calibration images from images/videos into ``out_dir`` + a manifest.

    Images are taken evenly from the sorted list; each video contributes frames spread over its
    whole length (``frames_per_video``, default: an equal share of ``count`` with a margin for
    the duplicates that get dropped). Frames are saved as PNG so no second lossy encoding
    changes the pixels the model will be calibrated on.
    """
    check_positive_int(count, "count")
    check_non_negative_float(dedup_threshold, "dedup threshold")
    if frames_per_video is not None:
        check_positive_int(frames_per_video, "frames per video")
    out = check_output_dir(out_dir, "out")
    images, videos = expand_sources(sources)
    if out.exists() and any(out.glob("calib_*.png")):
        raise CalibrationError(f"{out}: already holds a calibration set; choose an empty folder")

    candidates: list[tuple[str, int | None, np.ndarray]] = []
    share = max(1, count // max(1, len(videos) + (1 if images else 0)))
    per_video = frames_per_video or share * 2
    # Twice the wanted count leaves room for the near-duplicates that get dropped.
    for path in [images[i] for i in evenly_spaced(len(images), count * 2)]:
        candidates.append((str(path), None, read_image_bgr(path)))
    for video in videos:
        for frame_index, decoded in sample_video_frames(video, per_video):
            candidates.append((str(video), frame_index, decoded))

    out.mkdir(parents=True, exist_ok=True)  # only once every input has been read
    result = CalibrationSet(directory=out, considered=len(candidates))
    dedup = NearDuplicateFilter(dedup_threshold)
    unique = [candidate for candidate in candidates if dedup.is_new(candidate[2])]
    result.duplicates = len(candidates) - len(unique)
    for number, index in enumerate(evenly_spaced(len(unique), count)):
        source, frame, image = unique[index]
        name = f"calib_{number:04d}.png"
        if not cv2.imwrite(str(out / name), image):
            raise CalibrationError(f"{out / name}: cannot write the image")
        digest = sha256_file(out / name)
        height, width = image.shape[:2]
        result.items.append(CalibrationItem(name, source, frame, height, width, digest))
    if not result.items:
        raise CalibrationError("no calibration image could be produced from " + ", ".join(map(str, sources)))
    (out / MANIFEST_NAME).write_text(json.dumps(result.manifest(dedup_threshold), indent=2) + "\n")
    return result


# ----------------------------------------------------------------------------- reading


def list_calibration_images(calib_dir: str | Path, limit: int | None = None) -> list[Path]:
    """Images of a calibration set: the manifest's order when there is one, else sorted files.

    The list is ``images`` (ours) or ``files`` (the synthetic set's); an entry is a file name or an
    object with ``file``, ``file_name`` or ``path``.
    """
    root = Path(calib_dir)
    if not root.is_dir():
        raise CalibrationError(f"{root}: not a folder (expected a calibration set with {MANIFEST_NAME})")
    manifest_path = root / MANIFEST_NAME
    paths: list[Path]
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as exc:
            raise CalibrationError(f"{manifest_path}: not valid JSON ({exc})") from exc
        entries = manifest
        if isinstance(manifest, dict):
            entries = manifest.get("images", manifest.get("files"))
        if not isinstance(entries, list):
            raise CalibrationError(f"{manifest_path}: expected an 'images' (or 'files') list")
        paths = []
        for entry in entries:
            name = (
                entry
                if isinstance(entry, str)
                else next(
                    (
                        entry[k]
                        for k in ("file", "file_name", "path")
                        if isinstance(entry, dict) and k in entry
                    ),
                    None,
                )
            )
            if name is None:
                raise CalibrationError(f"{manifest_path}: image entry without a file name: {entry!r}")
            path = root / name
            if not path.is_file():
                raise CalibrationError(f"{manifest_path}: lists {name}, which is missing from {root}")
            paths.append(path)
    else:
        paths = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise CalibrationError(f"{root}: holds no calibration image")
    if limit is not None and limit < len(paths):
        paths = [paths[i] for i in evenly_spaced(len(paths), limit)]
    return paths


def iter_calibration_batches(
    calib_dir: str | Path, config: Any, limit: int | None = None
) -> Iterator[np.ndarray]:
    """Each calibration image as the model's input tensor, made by the runtime's ``prepare_batch``."""
    from .preprocess import prepare_batch  # the device's own preprocessing, byte for byte

    for path in list_calibration_images(calib_dir, limit):
        batch, _ = prepare_batch([read_image_bgr(path)], config)
        yield np.ascontiguousarray(batch)
