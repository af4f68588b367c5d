"""One thread per source and the board they post frames on.

A live reader keeps only the newest frame of its stream (a slow model skips stale frames instead
of falling behind; each skipped frame is counted) and reopens a stream that ends, errors or stalls,
with backoff, one log line per event. A file reader gives every frame in order and waits while
its queue is full, so files are never dropped. Readers never wait for each other: a dead or slow
stream only ever costs its own frames.
"""

from __future__ import annotations

import enum
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import cv2

from ..sources import (
    Frame,
    ImageConversionError,
    Source,
    SourceProblem,
    gstreamer_available,
    is_gstreamer_pipeline,
    to_bgr8,
)
from .options import ReconnectPolicy

Report = Callable[[str], None]
NO_FRAMES = "opened but delivered no frames"


class StreamState(str, enum.Enum):
    """Where a reader is; ``failed`` is for good (it gave up), ``ended`` is a file that was read."""

    CONNECTING = "connecting"
    LIVE = "live"
    RECONNECTING = "reconnecting"
    ENDED = "ended"
    FAILED = "failed"


@dataclass
class ReaderStats:
    """What a reader has done; read by the metrics endpoint and the end-of-run summary."""

    read: int = 0
    dropped: int = 0
    reconnects: int = 0
    problems: int = 0
    state: StreamState = StreamState.CONNECTING
    last_frame_at: float | None = None  # time.monotonic() of the newest frame posted
    interval: float | None = None  # smoothed seconds between frames: when the next one is due
    last_error: str = ""
    down_since: float | None = None


@dataclass(frozen=True)
class StreamEnd:
    """Posted by a file reader after a source's last frame: its video can be closed then."""

    stream: str


@dataclass
class Slot:
    """A reader's frames waiting on the board: at most one for live streams, ``capacity`` for files."""

    live: bool
    capacity: int
    frames: deque[Frame | StreamEnd] = field(default_factory=deque)


class Board:
    """Readers post frames here; the batching loop waits on it and takes them. One lock for all."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.slots: dict[str, Slot] = {}

    def add(self, reader: str, live: bool, capacity: int = 1) -> None:
        with self.cond:
            self.slots[reader] = Slot(live=live, capacity=max(1, capacity))

    def post(self, reader: str, frame: Frame | StreamEnd, stop: threading.Event) -> bool:
        """Live: replace what waits (returns True if a frame was dropped). File: wait for room."""
        with self.cond:
            slot = self.slots[reader]
            dropped = False
            if slot.live:
                if slot.frames:
                    slot.frames.clear()
                    dropped = True
            else:
                while len(slot.frames) >= slot.capacity and not stop.is_set():
                    self.cond.wait(0.2)
                if stop.is_set():
                    return False
            slot.frames.append(frame)
            self.cond.notify_all()
            return dropped

    def waiting(self) -> int:
        return sum(len(s.frames) for s in self.slots.values())

    def take(self, limit: int, order: list[str]) -> tuple[list[Frame], list[StreamEnd]]:
        """Up to ``limit`` frames, one per reader per pass in ``order`` (fair across streams), and the
        stream ends met on the way (each after its stream's last frame, so handle them after)."""
        frames: list[Frame] = []
        ends: list[StreamEnd] = []
        progressed = True
        while len(frames) < limit and progressed:
            progressed = False
            for name in order:
                slot = self.slots[name]
                while slot.frames and isinstance(slot.frames[0], StreamEnd):
                    ends.append(slot.frames.popleft())  # type: ignore[arg-type]
                    progressed = True
                if slot.frames and len(frames) < limit:
                    frames.append(slot.frames.popleft())  # type: ignore[arg-type]
                    progressed = True
        if frames or ends:
            self.cond.notify_all()  # file readers waiting for room
        return frames, ends

    def wake(self) -> None:
        with self.cond:
            self.cond.notify_all()


class Reader(threading.Thread):
    """Base of the reader threads: a name (the stream's), stats, the board, a stop event."""

    live = False

    def __init__(self, name: str, board: Board, report: Report, capacity: int = 1) -> None:
        super().__init__(name=f"reader:{name}", daemon=True)
        self.stream = name
        self.board = board
        self.report = report
        self.stats = ReaderStats()
        self.stopping = threading.Event()
        self.stream_names: tuple[str, ...] = (name,)  # the streams (output names) this reader feeds
        board.add(name, self.live, capacity)

    def stop(self) -> None:
        self.stopping.set()
        self.board.wake()

    @property
    def finished(self) -> bool:
        return self.stats.state in (StreamState.ENDED, StreamState.FAILED)

    def _post(self, frame: Frame) -> bool:
        with self.board.cond:
            now = time.monotonic()
            stats = self.stats
            if stats.last_frame_at is not None:
                gap = now - stats.last_frame_at
                stats.interval = gap if stats.interval is None else 0.8 * stats.interval + 0.2 * gap
            stats.read += 1
            stats.last_frame_at = now
        dropped = self.board.post(self.stream, frame, self.stopping)
        if dropped:
            with self.board.cond:
                self.stats.dropped += 1
        return not self.stopping.is_set()

    def _set_state(self, state: StreamState) -> None:
        with self.board.cond:
            self.stats.state = state
            self.board.cond.notify_all()


class FileReader(Reader):
    """Image and video files (and videos over HTTP) of one ``--source``: every frame, in order."""

    def __init__(
        self,
        name: str,
        sources: Iterable[tuple[str, Source]],
        board: Board,
        report: Report,
        capacity: int = 1,
    ) -> None:
        super().__init__(name, board, report, capacity)
        self.sources = list(sources)  # (stream name, source)
        self.stream_names = tuple(stream for stream, _ in self.sources)

    def run(self) -> None:
        self._set_state(StreamState.LIVE)
        try:
            for stream, source in self.sources:
                for item in source.frames():
                    if isinstance(item, SourceProblem):
                        self.report(str(item))
                        with self.board.cond:
                            self.stats.problems += int(item.is_error)
                        continue
                    item.stream = stream
                    if not self._post(item):
                        return
                if self.stopping.is_set():
                    return
                self.board.post(self.stream, StreamEnd(stream), self.stopping)
        except Exception as exc:  # a decoder bug must not kill the run silently: say which file
            self.report(f"error: {self.stream}: reading failed ({type(exc).__name__}: {exc})")
            with self.board.cond:
                self.stats.problems += 1
        finally:
            self._set_state(StreamState.ENDED)


def open_capture(spec: str, timeout_s: float) -> cv2.VideoCapture:
    """OpenCV capture for a camera index, a GStreamer pipeline or a URL, with open/read timeouts.

    The read timeout is what turns a stalled stream (a paused server, a dead link) into a failed
    ``read`` instead of a thread blocked forever (FFmpeg backend; GStreamer pipelines and cameras
    carry their own timeouts).
    """
    if spec.isdigit():
        return cv2.VideoCapture(int(spec))
    if is_gstreamer_pipeline(spec):
        return cv2.VideoCapture(spec, cv2.CAP_GSTREAMER)
    ms = int(timeout_s * 1000)
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
    return cv2.VideoCapture(spec, cv2.CAP_FFMPEG, params)


def source_fps(capture: cv2.VideoCapture) -> float | None:
    """The frame rate a source says it has, when it is believable (some report 0 or 90000)."""
    fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    return fps if 0.5 <= fps <= 240.0 else None


class LiveReader(Reader):
    """A camera, stream URL or GStreamer pipeline, reopened with backoff whenever it is lost."""

    live = True

    def __init__(
        self,
        name: str,
        spec: str,
        policy: ReconnectPolicy,
        board: Board,
        report: Report,
        opener: Callable[[str, float], cv2.VideoCapture] = open_capture,
    ) -> None:
        super().__init__(name, board, report)
        self.spec = spec
        self.policy = policy
        self.opener = opener
        self.fps: float | None = None

    def _wait(self, seconds: float) -> None:
        self.stopping.wait(seconds)

    def _give_up(self, failures: int, why: str) -> None:
        self.stats.last_error = why
        self.report(f"error: {self.stream}: gave up after {failures} failed attempts ({why})")
        self._set_state(StreamState.FAILED)

    def run(self) -> None:
        if is_gstreamer_pipeline(self.spec) and not gstreamer_available():
            self.report(
                f"error: {self.stream}: this OpenCV build has no GStreamer support "
                "(opencv-python-headless); install an OpenCV built with GStreamer"
            )
            self.stats.last_error = "no GStreamer support"
            self._set_state(StreamState.FAILED)
            return
        failures = 0
        connected_once = False
        while not self.stopping.is_set():
            capture = self.opener(self.spec, self.policy.stall_s)
            if not capture.isOpened():
                capture.release()
                failures += 1
                why = "cannot open (not connected, refused or unreachable)"
                if self.policy.attempts and failures >= self.policy.attempts:
                    self._give_up(failures, why)
                    return
                if (
                    failures & (failures - 1) == 0
                ):  # attempts 1, 2, 4, 8...: a dead camera does not flood the log
                    delay = self.policy.delay(failures)
                    self.report(
                        f"warning: {self.stream}: {why} (attempt {failures}); retrying in {delay:.1f} s"
                    )
                self.stats.last_error = why
                self._wait(self.policy.delay(failures))
                continue
            self.fps = source_fps(capture)
            outcome = self._read(capture, connected_once)
            capture.release()
            if self.stopping.is_set():
                break
            if outcome == NO_FRAMES:
                failures += 1
            else:
                failures = 0
            connected_once = connected_once or outcome != NO_FRAMES
            if self.policy.attempts and failures >= self.policy.attempts:
                self._give_up(failures, outcome)
                return
            delay = self.policy.delay(max(1, failures))
            with self.board.cond:
                self.stats.reconnects += 1
                self.stats.last_error = outcome
                self.stats.down_since = self.stats.down_since or time.monotonic()
            self.report(f"warning: {self.stream}: {outcome}; reconnecting in {delay:.1f} s")
            self._set_state(StreamState.RECONNECTING)
            self._wait(delay)
        self._set_state(StreamState.ENDED)

    def _read(self, capture: cv2.VideoCapture, connected_once: bool) -> str:
        """Read until the stream is lost; returns why (``NO_FRAMES`` if it never gave one)."""
        index = 0
        last = time.monotonic()
        while not self.stopping.is_set():
            t0 = time.perf_counter()
            ok, image = capture.read()
            if not ok or image is None:
                break
            decode = time.perf_counter() - t0
            last = time.monotonic()
            try:
                image, _ = to_bgr8(image)
            except ImageConversionError as exc:
                return f"frame {index}: {exc}"
            if index == 0:
                down = self.stats.down_since
                back = f" after {last - down:.1f} s down" if down is not None else ""
                self.report(f"{'reconnected' if connected_once else 'connected'}: {self.stream}{back}")
                with self.board.cond:
                    self.stats.down_since = None
                self._set_state(StreamState.LIVE)
            frame = Frame(
                image, self.spec, index, time.time(), decode, live=True, stream=self.stream, fps=self.fps
            )
            index += 1
            if not self._post(frame):
                break
        if index == 0:
            return NO_FRAMES
        silent = time.monotonic() - last
        if silent >= 0.8 * self.policy.stall_s:
            return f"stalled (no frame for {silent:.1f} s)"
        return "stream ended or errored"
