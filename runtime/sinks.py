"""Where results go: JSONL, COCO results json, annotated images and videos.

Written so that a crash or Ctrl-C loses nothing already written: the JSONL gets one complete line
per frame, flushed at once; images are written to a temporary name and renamed (a reader never
sees half a file); the COCO json is streamed to a ``.partial`` file, flushed per frame, and
completed and renamed at the end; a video is written under a ``.partial`` name and renamed when
closed (closing also happens on Ctrl-C, SIGTERM and exceptions, via ``SinkSet``'s context manager).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .coco import detections_to_coco, for_results_file
from .detections import Detections
from .errors import SinkError
from .files import atomic_write_bytes
from .sources import Frame

VIDEO_FOURCC = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "MJPG", ".mov": "mp4v"}


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until every sink has the frame: outputs never disagree on a frame.

    A signal that arrives meanwhile is recorded and handed to the handler that was in place on
    leaving, between frames. Without this, a Ctrl-C landing after the JSONL line but before the
    COCO record leaves the files out of step. (Blocking with a signal mask is not enough: the
    kernel hands a process signal to any thread that has it unblocked, such as onnxruntime's.)
    Python handles signals on the main thread only, so elsewhere there is nothing to hold.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def hold(signum: int, _frame: Any) -> None:
        caught.append(signum)

    previous = {sig: signal.signal(sig, hold) for sig in _STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        if caught:
            _deliver(caught[0], previous[caught[0]])


def _deliver(signum: int, handler: Any) -> None:
    """Act on a held signal as its own handler would have."""
    if callable(handler):
        handler(signum, None)
    elif handler in (signal.SIG_DFL, None):
        signal.raise_signal(signum)


def frame_record(frame: Frame, dets: Detections, with_masks: bool = False) -> dict[str, Any]:
    return {
        "source": frame.source,
        "frame": frame.index,
        "timestamp": round(frame.timestamp, 6),
        "position_s": None if frame.position_s is None else round(frame.position_s, 4),
        "image_size": list(dets.image_size),
        "detections": dets.to_json(with_masks=with_masks),
    }


class JsonlSink:
    """One JSON line per frame, flushed per frame."""

    def __init__(self, path: Path, with_masks: bool = False) -> None:
        self.path = path
        self.with_masks = with_masks
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("w", encoding="utf-8")
        except OSError as exc:
            raise SinkError(f"{path}: cannot write ({exc.strerror or exc})") from exc

    def write(self, frame: Frame, dets: Detections, annotated: np.ndarray | None = None) -> None:
        self._file.write(json.dumps(frame_record(frame, dets, self.with_masks)) + "\n")
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()


class CocoResultsSink:
    """COCO results list (bbox, score, category_id, segmentation RLE, keypoints) for COCO eval.

    Streamed: each frame's results are appended to ``<name>.partial`` and flushed, so the cost per
    frame stays flat on long runs; closing adds the final ``]`` and renames it into place. After a
    hard kill the ``.partial`` holds every result written, as a JSON list missing its last ``]``
    (``recover_coco_partial`` completes it). ``image_ids`` maps a file name to its COCO image id;
    without it, frames are numbered from 1.
    """

    def __init__(self, path: Path, image_ids: dict[str, int] | None = None) -> None:
        self.path = path
        self.partial = path.with_name(path.name + ".partial")
        self.image_ids = image_ids
        self.count = 0
        self._frames = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.partial.open("w", encoding="utf-8")
        except OSError as exc:
            raise SinkError(f"{path}: cannot write ({exc.strerror or exc})") from exc
        self._file.write("[")
        self._file.flush()

    def _image_id(self, frame: Frame) -> int:
        self._frames += 1
        if self.image_ids is not None:
            name = Path(frame.source).name
            if name in self.image_ids:
                return self.image_ids[name]
        return self._frames

    def write(self, frame: Frame, dets: Detections, annotated: np.ndarray | None = None) -> None:
        image_id = self._image_id(frame)
        items = [json.dumps(for_results_file(item)) for item in detections_to_coco(image_id, dets)]
        if items:
            self._file.write(("\n" if self.count == 0 else ",\n") + ",\n".join(items))
            self._file.flush()
            self.count += len(items)

    def close(self) -> None:
        if self._file.closed:
            return
        self._file.write("\n]\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self.partial, self.path)


def recover_coco_partial(partial: Path) -> list[dict[str, Any]]:
    """The results in a ``.partial`` COCO file left by a killed run."""
    text = partial.read_text(encoding="utf-8").rstrip()
    return json.loads(text + ("]" if not text.endswith("]") else ""))


def _safe_stem(source: str) -> str:
    stem = Path(source).stem if not source.isdigit() else f"camera{source}"
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)
    return cleaned[:80] or "source"


class ImageSink:
    """Annotated images in a folder; each written whole (temp file + rename)."""

    needs_annotated = True

    def __init__(self, folder: Path, extension: str = ".jpg") -> None:
        self.folder = folder
        self.extension = extension
        folder.mkdir(parents=True, exist_ok=True)

    def write(self, frame: Frame, dets: Detections, annotated: np.ndarray | None = None) -> None:
        if annotated is None:
            return
        name = _safe_stem(frame.source)
        if frame.index or frame.position_s is not None:
            name = f"{name}_{frame.index:06d}"
        ok, data = cv2.imencode(self.extension, annotated)
        if not ok:
            raise SinkError(f"{self.folder}: cannot encode {self.extension} image")
        atomic_write_bytes(self.folder / f"{name}{self.extension}", data.tobytes())

    def close(self) -> None:
        pass


class VideoSink:
    """One annotated video per source; written as ``name.partial.ext`` and renamed when closed."""

    needs_annotated = True

    def __init__(self, folder: Path, fps: float = 25.0, extension: str = ".mp4") -> None:
        self.folder = folder
        self.fps = fps
        self.extension = extension
        self._writers: dict[str, tuple[cv2.VideoWriter, Path, Path, tuple[int, int]]] = {}
        folder.mkdir(parents=True, exist_ok=True)
        self.finished: list[Path] = []

    def write(self, frame: Frame, dets: Detections, annotated: np.ndarray | None = None) -> None:
        if annotated is None:
            return
        h, w = annotated.shape[:2]
        entry = self._writers.get(frame.source)
        if entry is None:
            final = self.folder / f"{_safe_stem(frame.source)}.annotated{self.extension}"
            partial = final.with_name(final.stem + ".partial" + self.extension)
            fourcc = cv2.VideoWriter.fourcc(*VIDEO_FOURCC.get(self.extension, "mp4v"))
            writer = cv2.VideoWriter(str(partial), fourcc, self.fps, (w, h))
            if not writer.isOpened():
                raise SinkError(f"{final}: cannot open a video writer ({self.extension})")
            entry = (writer, partial, final, (w, h))
            self._writers[frame.source] = entry
        writer, _, _, size = entry
        if (w, h) != size:
            annotated = cv2.resize(annotated, size)
        writer.write(annotated)

    def finish(self, source: str) -> None:
        """Close one source's video (when the source ends) so it is complete on disk at once."""
        entry = self._writers.pop(source, None)
        if entry is not None:
            writer, partial, final, _ = entry
            writer.release()
            os.replace(partial, final)
            self.finished.append(final)

    def close(self) -> None:
        for source in list(self._writers):
            self.finish(source)


class SinkSet:
    """All sinks of a run; as a context manager it closes them on success, exception or Ctrl-C."""

    def __init__(self, sinks: list[Any]) -> None:
        self.sinks = sinks

    @property
    def wants_annotated(self) -> bool:
        return any(getattr(s, "needs_annotated", False) for s in self.sinks)

    def write(self, frame: Frame, dets: Detections, annotated: np.ndarray | None = None) -> None:
        with signals_held():
            for sink in self.sinks:
                sink.write(frame, dets, annotated)

    def source_finished(self, source: str) -> None:
        for sink in self.sinks:
            if hasattr(sink, "finish"):
                sink.finish(source)

    def close(self) -> None:
        errors = []
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:  # close every sink even if one fails
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> SinkSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
