"""Where frames come from: image files, folders, globs, videos, cameras, streams (OpenCV).

File sources give every frame in order. Live sources (cameras, RTSP/HTTP streams, GStreamer
pipelines) are only named here: ``service/readers.py`` reads each in its own thread, keeps the
newest frame and reconnects. A bad input yields one ``SourceProblem`` line naming it, and the run
goes on with the next input.
"""

from __future__ import annotations

import glob
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .files import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from .images import ImageConversionError, decode_image_file, to_bgr8

__all__ = [
    "Frame", "ImageConversionError", "SourceProblem", "decode_image_file", "to_bgr8",
]  # fmt: skip

LIVE_SCHEMES = ("rtsp", "rtsps", "rtmp", "udp", "tcp", "srt")
STREAM_TIMEOUT_MS = 5000


@dataclass
class Frame:
    """One decoded BGR uint8 frame and where it came from."""

    image: np.ndarray
    source: str
    index: int  # frame number within its source (0 for a single image)
    timestamp: float  # wall clock when decoded (time.time())
    decode_s: float  # seconds spent reading + decoding it
    position_s: float | None = None  # position in a video file
    live: bool = False  # from a camera / stream (frames may have been dropped before it)
    stream: str = ""  # the unique stream name that names this frame's outputs
    fps: float | None = None  # the source's own frame rate, when it says one


@dataclass
class SourceProblem:
    """A one-line report about an input: an error (the input is skipped) or a note (converted)."""

    source: str
    message: str
    is_error: bool = True

    def __str__(self) -> str:
        return f"{'error' if self.is_error else 'note'}: {self.source}: {self.message}"


class ImageFileSource:
    """One image file: one frame."""

    live = False

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = str(path)
        self.total: int | None = 1
        self.dropped = 0

    def frames(self) -> Iterator[Frame | SourceProblem]:
        t0 = time.perf_counter()
        try:
            image, note = decode_image_file(self.path)
        except ImageConversionError as exc:
            yield SourceProblem(self.name, str(exc))
            return
        if note:
            yield SourceProblem(self.name, note, is_error=False)
        yield Frame(image, self.name, 0, time.time(), time.perf_counter() - t0)


def _capture_error(name: str, capture: cv2.VideoCapture | None, what: str) -> SourceProblem:
    if capture is not None:
        capture.release()
    return SourceProblem(name, what)


class VideoFileSource:
    """A video file: every frame, in order."""

    live = False

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = str(path)
        self.dropped = 0
        self.total: int | None = None
        if path.exists() and path.stat().st_size > 0:
            cap = cv2.VideoCapture(str(path))
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
            cap.release()
            self.total = count if count > 0 else None

    def frames(self) -> Iterator[Frame | SourceProblem]:
        try:
            size = self.path.stat().st_size
        except OSError as exc:
            yield SourceProblem(self.name, f"cannot read file ({exc.strerror or exc})")
            return
        if size == 0:
            yield SourceProblem(self.name, "empty file (0 bytes)")
            return
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            yield _capture_error(self.name, cap, "cannot open as a video (corrupt or unsupported format)")
            return
        index = 0
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        rate = fps if 0.5 <= fps <= 240.0 else None
        try:
            while True:
                t0 = time.perf_counter()
                ok, image = cap.read()
                if not ok or image is None:
                    break
                position = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
                try:
                    image, _ = to_bgr8(image)
                except ImageConversionError as exc:
                    yield SourceProblem(self.name, f"frame {index}: {exc}")
                    break
                decode = time.perf_counter() - t0
                yield Frame(image, self.name, index, time.time(), decode, position, fps=rate)
                index += 1
        finally:
            cap.release()
        if index == 0:
            yield SourceProblem(self.name, "no readable frames (corrupt, truncated or not a video)")
        elif self.total is not None and index < self.total - 1:
            yield SourceProblem(self.name, f"ended after {index} of {self.total} frames (truncated?)", False)


def gstreamer_available() -> bool:
    info = cv2.getBuildInformation()
    match = re.search(r"GStreamer:\s*(\S+)", info)
    return bool(match and match.group(1).upper().startswith("YES"))


class LiveSource:
    """A camera index, stream URL or GStreamer pipeline: read by ``service.readers.LiveReader``."""

    live = True

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.name = spec
        self.total: int | None = None
        self.dropped = 0


Source = ImageFileSource | VideoFileSource | LiveSource


def is_gstreamer_pipeline(spec: str) -> bool:
    return "!" in spec and not Path(spec).exists()


def is_url(spec: str) -> bool:
    return re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", spec) is not None


def _is_live_url(spec: str) -> bool:
    scheme = spec.split("://", 1)[0].lower()
    if scheme in LIVE_SCHEMES:
        return True
    path = spec.split("?", 1)[0].lower()
    return not path.endswith(VIDEO_SUFFIXES)  # HTTP MJPEG cameras are live; an .mp4 over HTTP is a file


def _file_source(path: Path) -> Source:
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return VideoFileSource(path)
    return ImageFileSource(path)  # images, and unknown suffixes (decoding says what is wrong)


def expand_source(spec: str) -> list[Source | SourceProblem]:
    """One ``--source`` argument -> the sources it names, or a problem line."""
    if spec.isdigit() or is_gstreamer_pipeline(spec):
        return [LiveSource(spec)]
    if is_url(spec):
        if _is_live_url(spec):
            return [LiveSource(spec)]
        return [_UrlVideoSource(spec)]
    path = Path(spec).expanduser()
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES)
        if not found:
            return [SourceProblem(spec, "folder holds no image or video files")]
        return [_file_source(p) for p in found]
    if any(ch in spec for ch in "*?["):
        matches = sorted(Path(p) for p in glob.glob(str(path), recursive=True))
        files = [p for p in matches if p.is_file()]
        if not files:
            return [SourceProblem(spec, "no files match this pattern")]
        return [_file_source(p) for p in files]
    if not path.exists():
        return [SourceProblem(spec, "no such file, folder, camera index or URL")]
    return [_file_source(path)]


class _UrlVideoSource(VideoFileSource):
    """A video file served over HTTP: every frame, in order, like a local file."""

    def __init__(self, url: str) -> None:
        self.path = Path(url)
        self.url = url
        self.name = url
        self.dropped = 0
        self.total = None

    def frames(self) -> Iterator[Frame | SourceProblem]:
        timeouts = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            STREAM_TIMEOUT_MS,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            STREAM_TIMEOUT_MS,
        ]
        cap = cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, timeouts)
        if not cap.isOpened():
            yield _capture_error(self.name, cap, "cannot open stream (refused, unreachable or not a video)")
            return
        index = 0
        try:
            while True:
                t0 = time.perf_counter()
                ok, image = cap.read()
                if not ok or image is None:
                    break
                try:
                    image, _ = to_bgr8(image)
                except ImageConversionError as exc:
                    yield SourceProblem(self.name, f"frame {index}: {exc}")
                    break
                position = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
                yield Frame(image, self.name, index, time.time(), time.perf_counter() - t0, position)
                index += 1
        finally:
            cap.release()
        if index == 0:
            yield SourceProblem(self.name, "no readable frames")


def open_sources(specs: list[str]) -> list[Source | SourceProblem]:
    out: list[Source | SourceProblem] = []
    for spec in specs:
        out.extend(expand_source(spec))
    return out
