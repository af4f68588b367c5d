"""Where results go: JSONL, COCO results json, annotated images and videos.

Written so that a crash or Ctrl-C loses nothing already written: the JSONL gets one complete line
per frame, flushed at once; images are written to a temporary name and renamed (a reader never
sees half a file); the COCO json is streamed to a ``.partial`` file, flushed per frame, and
completed and renamed at the end; a video is written under a ``.partial`` name and renamed when
closed (closing also happens on Ctrl-C, SIGTERM and exceptions, via ``SinkSet``'s context manager).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import threading
import time
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


def _write_failed(path: Path, exc: OSError, kept: str) -> SinkError:
    """One line for a write that failed (disk full above all), saying what stays valid."""
    reason = "disk full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
    return SinkError(f"{path}: cannot write ({reason}); {kept}")


def frame_record(frame: Frame, dets: Detections, with_masks: bool = False) -> dict[str, Any]:
    return {
        "stream": frame.stream or frame.source,
        "source": frame.source,
        "frame": frame.index,
        "timestamp": round(frame.timestamp, 6),
        "age_s": round(time.time() - frame.timestamp, 4),  # capture to result: how late this answer is
        "position_s": None if frame.position_s is None else round(frame.position_s, 4),
        "image_size": list(dets.image_size),
        "detections": dets.to_json(with_masks=with_masks),
    }


class JsonlSink:
    """One JSON line per frame, flushed per frame; optionally rotated by size or age for long runs.

    Without rotation the file is ``path``; with it, segments ``<stem>.000001.jsonl``, ... each
    closed (synced) before the next opens. A write that fails (disk full) is cut back to the last
    complete line, so every segment stays valid JSONL.
    """

    def __init__(
        self,
        path: Path,
        with_masks: bool = False,
        rotate_bytes: int | None = None,
        rotate_seconds: float | None = None,
    ) -> None:
        self.path = path
        self.with_masks = with_masks
        self.rotate_bytes = rotate_bytes
        self.rotate_seconds = rotate_seconds
        self.rotating = rotate_bytes is not None or rotate_seconds is not None
        self.segments: list[Path] = []
        self.lines = 0
        self._open_segment()

    def _open_segment(self) -> None:
        target = self.path
        if self.rotating:
            target = self.path.with_name(f"{self.path.stem}.{len(self.segments) + 1:06d}{self.path.suffix}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._file = target.open("x", encoding="utf-8")  # never truncate what is there
        except FileExistsError:
            raise SinkError(f"{target}: already exists; refusing to overwrite it") from None
        except OSError as exc:
            raise SinkError(f"{target}: cannot write ({exc.strerror or exc})") from exc
        self.segments.append(target)
        self._opened = time.monotonic()
        self._size = 0

    def _due(self) -> bool:
        if self.rotate_bytes is not None and self._size >= self.rotate_bytes:
            return True
        return self.rotate_seconds is not None and time.monotonic() - self._opened >= self.rotate_seconds

    def write(self, frame: Frame, dets: Detections, annotated: np.ndarray | None = None) -> None:
        if self.rotating and self._size and self._due():
            self._close_file()
            self._open_segment()
        line = json.dumps(frame_record(frame, dets, self.with_masks)) + "\n"
        start = self._file.tell()
        try:
            self._file.write(line)
            self._file.flush()
        except OSError as exc:
            self._cut_back(start)
            raise _write_failed(self.segments[-1], exc, f"its {self.lines} complete lines are kept") from None
        self._size += len(line)
        self.lines += 1

    def _cut_back(self, offset: int) -> None:
        """Drop a half-written line (the buffer that could not be flushed, and any part that was)."""
        with contextlib.suppress(OSError):
            fd = self._file.fileno()
            os.ftruncate(fd, offset)
        with contextlib.suppress(OSError, ValueError):
            self._file.close()  # the unflushed buffer is lost on purpose; the file ends at ``offset``
        self._file = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def _close_file(self) -> None:
        if not self._file.closed:
            self._file.flush()
            with contextlib.suppress(OSError):
                os.fsync(self._file.fileno())
            self._file.close()

    def close(self) -> None:
        self._close_file()


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
        self.failed = False
        self._frames = 0
        if path.exists():
            raise SinkError(f"{path}: already exists; refusing to overwrite it")
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
            start = self._file.tell()
            try:
                self._file.write(("\n" if self.count == 0 else ",\n") + ",\n".join(items))
                self._file.flush()
            except OSError as exc:
                self.failed = True
                with contextlib.suppress(OSError):
                    os.ftruncate(self._file.fileno(), start)
                kept = f"{self.partial.name} keeps the {self.count} results before (recover_coco_partial)"
                raise _write_failed(self.path, exc, kept) from None
            self.count += len(items)

    def close(self) -> None:
        """Complete the list and rename it into place; after a failed write, leave the ``.partial``."""
        if self._file.closed:
            return
        if self.failed:
            with contextlib.suppress(OSError, ValueError):
                self._file.close()
            return
        try:
            self._file.write("\n]\n")
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
        except OSError as exc:
            with contextlib.suppress(OSError, ValueError):
                self._file.close()
            kept = f"{self.partial.name} keeps its {self.count} results (recover_coco_partial)"
            raise _write_failed(self.path, exc, kept) from None
        os.replace(self.partial, self.path)


def recover_coco_partial(partial: Path) -> list[dict[str, Any]]:
    """The results in a ``.partial`` COCO file left by a killed run."""
    text = partial.read_text(encoding="utf-8").rstrip()
    return json.loads(text + ("]" if not text.endswith("]") else ""))


def safe_stem(source: str) -> str:
    """A file-name-safe short name for a source (a file's stem, ``camera0``, a URL's path)."""
    if source.isdigit():
        return f"camera{source}"
    stem = (
        Path(source.split("?", 1)[0].rstrip("/")).stem if "://" not in source else source.split("://", 1)[1]
    )
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem).strip("._")
    return cleaned[:80] or "source"


def _output_name(frame: Frame) -> str:
    return frame.stream or safe_stem(frame.source)


class ImageSink:
    """Annotated images in a folder, named by stream; each written whole (temp file + rename)."""

    needs_annotated = True

    def __init__(self, folder: Path, extension: str = ".jpg") -> None:
        self.folder = folder
        self.extension = extension
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkError(f"{folder}: cannot create the images folder ({exc.strerror or exc})") from None

    def write(self, frame: Frame, dets: Detections, annotated: np.ndarray | None = None) -> None:
        if annotated is None:
            return
        name = _output_name(frame)
        if frame.index or frame.position_s is not None:
            name = f"{name}_{frame.index:06d}"
        ok, data = cv2.imencode(self.extension, annotated)
        if not ok:
            raise SinkError(f"{self.folder}: cannot encode {self.extension} image")
        target = self.folder / f"{name}{self.extension}"
        try:
            atomic_write_bytes(target, data.tobytes())
        except OSError as exc:
            raise _write_failed(target, exc, "the images written before are complete") from None

    def close(self) -> None:
        pass


class VideoSink:
    """One annotated video per stream, at the source's own frame rate unless ``fps`` is given.

    Written as ``name.annotated.partial.ext`` and renamed when closed, but only if the written
    file opens as a video: after a disk-full, a truncated file keeps its ``.partial`` name and
    never sits under the final one.
    """

    needs_annotated = True

    def __init__(self, folder: Path, fps: float | None = None, extension: str = ".mp4") -> None:
        self.folder = folder
        self.fps = fps
        self.extension = extension
        self._writers: dict[str, tuple[cv2.VideoWriter, Path, Path, tuple[int, int]]] = {}
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkError(f"{folder}: cannot create the videos folder ({exc.strerror or exc})") from None
        self.finished: list[Path] = []
        self.failed = False

    def write(self, frame: Frame, dets: Detections, annotated: np.ndarray | None = None) -> None:
        if annotated is None:
            return
        h, w = annotated.shape[:2]
        key = _output_name(frame)
        entry = self._writers.get(key)
        if entry is None:
            final = self.folder / f"{key}.annotated{self.extension}"
            if final.exists():
                raise SinkError(f"{final}: already exists; refusing to overwrite it")
            partial = final.with_name(final.stem + ".partial" + self.extension)
            fourcc = cv2.VideoWriter.fourcc(*VIDEO_FOURCC.get(self.extension, "mp4v"))
            fps = self.fps or frame.fps or 25.0
            writer = cv2.VideoWriter(str(partial), fourcc, fps, (w, h))
            if not writer.isOpened():
                raise SinkError(f"{final}: cannot open a video writer ({self.extension})")
            entry = (writer, partial, final, (w, h))
            self._writers[key] = entry
        writer, _, _, size = entry
        if (w, h) != size:
            annotated = cv2.resize(annotated, size)
        writer.write(annotated)

    def finish(self, stream: str) -> None:
        """Close one stream's video (when it ends) so it is complete on disk at once."""
        entry = self._writers.pop(stream, None)
        if entry is None:
            return
        writer, partial, final, _ = entry
        writer.release()
        if self.failed or not _readable_video(partial):
            self.failed = True
            raise SinkError(f"{partial}: the video could not be completed (disk full?); kept under this name")
        os.replace(partial, final)
        self.finished.append(final)

    def close(self) -> None:
        errors = []
        for stream in list(self._writers):
            try:
                self.finish(stream)
            except SinkError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


def _readable_video(path: Path) -> bool:
    capture = cv2.VideoCapture(str(path))
    try:
        return capture.isOpened() and capture.read()[0]
    finally:
        capture.release()


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

    def source_finished(self, stream: str) -> None:
        for sink in self.sinks:
            if hasattr(sink, "finish"):
                sink.finish(stream)

    def fail(self) -> None:
        """A write failed: close the rest, but promote no half-written file to its final name."""
        for sink in self.sinks:
            if hasattr(sink, "failed"):
                sink.failed = True

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

    def __exit__(self, kind: object, *exc: object) -> None:
        if kind is not None and isinstance(kind, type) and issubclass(kind, SinkError):
            self.fail()
        self.close()
