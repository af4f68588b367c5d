"""The service loop: frames from every reader -> batches with a deadline -> detector -> outputs.

A batch is sent when it is full, when every stream that is delivering has a frame in it, or when
the oldest frame in it has waited ``batch_timeout_s``: a slow or dead stream never holds the
others. Streams take turns at the head of the batch. A stop request (SIGTERM, Ctrl-C) lets the
batch in flight finish and be written; then every output is closed validly.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..detections import Detections
from ..sources import Frame
from ..stats import StageTimes
from .metrics import ServiceMetrics
from .options import OUTPUT_KINDS, ServiceOptions
from .outputs import StreamOutputs
from .readers import Board, Reader, StreamEnd, StreamState

AGE_SAMPLES = 100_000  # frame ages kept per stream for the summary: bounded for months-long runs


@dataclass(frozen=True)
class StreamFilter:
    """What one stream keeps of the batch's detections, and where its results go."""

    score: float
    class_ids: frozenset[int] | None = None
    outputs: tuple[str, ...] = OUTPUT_KINDS

    def apply(self, dets: Detections) -> Detections:
        keep = dets.scores >= self.score
        if self.class_ids is not None:
            keep &= np.isin(dets.labels, np.fromiter(self.class_ids, dtype=np.int64))
        return dets if bool(keep.all()) else dets.select(keep)


@dataclass
class StreamTally:
    """Per-stream results of the run, for the summary table."""

    processed: int = 0
    detections: int = 0
    ages: deque[float] = field(default_factory=lambda: deque(maxlen=AGE_SAMPLES))


class Service:
    """Runs readers, batches their frames into ``detector.detect``, writes each stream's outputs."""

    def __init__(
        self,
        detector: object,
        readers: Sequence[Reader],
        board: Board,
        filters: dict[str, StreamFilter],
        outputs: StreamOutputs,
        options: ServiceOptions,
        batch: int,
        max_frames: int | None = None,
        on_frame: Callable[[Frame, Detections, np.ndarray | None], None] | None = None,
        annotate_all: bool = False,
    ) -> None:
        self.detector = detector
        self.readers = list(readers)
        self.board = board
        self.filters = filters
        self.default_filter = next(iter(filters.values())) if filters else StreamFilter(0.0)
        self.outputs = outputs
        self.options = options
        self.batch = max(1, batch)
        self.max_frames = max_frames
        self.on_frame = on_frame
        self.annotate_all = annotate_all
        self.metrics: ServiceMetrics | None = None
        # Fast R-CNN mode: a frame's proposals (``motion.StreamMotionProposals``), None for RPN models.
        self.proposer: Callable[[Frame], np.ndarray] | None = None
        self.times = StageTimes()
        self.tallies: dict[str, StreamTally] = {}
        self.frames = 0
        self.detections = 0
        self.batches = 0
        self.last_batch_at = time.monotonic()
        self._stop = threading.Event()
        self._turn = 0
        scores = [f.score for f in filters.values()] or [0.0]
        self._score = min(scores)
        ids = {f.class_ids for f in filters.values()}
        self._classes = next(iter(ids)) if len(ids) == 1 else None

    # -- control -----------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Finish the batch in flight, then stop (safe to call from a signal handler)."""
        self._stop.set()
        self.board.wake()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def progress(self) -> tuple[float, int]:
        """When the last batch finished (monotonic) and how many frames wait: for ``/healthz``."""
        return self.last_batch_at, self.board.waiting()

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> None:
        for reader in self.readers:
            reader.start()
        try:
            while not self.stopping:
                taken = self._next_batch()
                if taken is None:
                    break
                frames, ends = taken
                if frames:
                    self._process(frames)
                for end in ends:
                    self.outputs.stream_finished(end.stream)
                if self.max_frames is not None and self.frames >= self.max_frames:
                    break
        finally:
            for reader in self.readers:
                reader.stop()
            for reader in self.readers:
                reader.join(timeout=self.options.reconnect.stall_s + 2.0)

    def _next_batch(self) -> tuple[list[Frame], list[StreamEnd]] | None:
        cond = self.board.cond
        with cond:
            while not self.board.waiting():
                if self.stopping or all(r.finished for r in self.readers):
                    return None
                cond.wait(0.25)
            deadline = time.monotonic() + self.options.batch_timeout_s
            while not self.stopping and self.board.waiting() < self.batch:
                deadline = min(deadline, self._next_drop())
                missing = [r for r in self.readers if self._due_before(r, deadline)]
                remaining = deadline - time.monotonic()
                if not missing or remaining <= 0:
                    break
                cond.wait(remaining)
            names = [r.stream for r in self.readers]
            start = self._turn % max(1, len(names))
            self._turn += 1
            return self.board.take(self.batch, names[start:] + names[:start])

    def _next_drop(self) -> float:
        """When a live stream already on the board will replace (drop) its waiting frame: waiting
        for a late stream past that point would cost a frame to gain one."""
        due = [
            r.stats.last_frame_at + r.stats.interval - 0.005
            for r in self.readers
            if r.live
            and self.board.slots[r.stream].frames
            and r.stats.last_frame_at is not None
            and r.stats.interval is not None
        ]
        return min(due, default=float("inf"))

    def _due_before(self, reader: Reader, deadline: float) -> bool:
        """Worth waiting for: delivering, nothing on the board yet, its next frame due by ``deadline``.

        A stream slower than the deadline (2 fps beside 25 fps) is not waited for, so it never
        lowers a faster stream's rate; it joins whichever batch its frame arrives in time for.
        """
        stats = reader.stats
        if stats.state is not StreamState.LIVE or self.board.slots[reader.stream].frames:
            return False
        if not reader.live:
            return True  # a file reader refills at once unless it has ended
        if stats.last_frame_at is None or stats.interval is None:
            return False
        return stats.last_frame_at + stats.interval <= deadline + 0.005

    def _process(self, frames: list[Frame]) -> None:
        from ..draw import annotate

        limit = None if self.max_frames is None else self.max_frames - self.frames
        if limit is not None:
            frames = frames[: max(0, limit)]
        if not frames:
            return
        t0 = time.perf_counter()
        extra: dict[str, object] = {}
        if self.proposer is not None:
            extra["proposals"] = [self.proposer(f) for f in frames]
        results = self.detector.detect(  # type: ignore[attr-defined]
            [f.image for f in frames], score_threshold=self._score, classes=self._classes, **extra
        )
        batch_s = time.perf_counter() - t0
        n = len(frames)
        if self.metrics is not None:
            self.metrics.observe_batch(batch_s, n)
        for frame, raw in zip(frames, results, strict=True):
            t1 = time.perf_counter()
            chosen = self.filters.get(frame.stream, self.default_filter)
            dets = chosen.apply(raw)
            wants = self.annotate_all or self.outputs.wants_annotated(chosen.outputs)
            annotated = annotate(frame.image, dets) if wants else None
            self.outputs.write(frame, dets, annotated, chosen.outputs)
            if self.on_frame is not None:
                self.on_frame(frame, dets, annotated)
            self.times.add("sink", time.perf_counter() - t1)
            self.times.add("decode", frame.decode_s)
            for stage in ("preprocess", "infer", "postprocess"):
                self.times.add(stage, raw.timings[stage] / n)
            age = time.time() - frame.timestamp
            tally = self.tallies.setdefault(frame.stream, StreamTally())
            tally.processed += 1
            tally.detections += len(dets)
            tally.ages.append(age)
            if self.metrics is not None:
                self.metrics.observe_frame(frame.stream, age)
            self.frames += 1
            self.detections += len(dets)
        self.batches += 1
        self.last_batch_at = time.monotonic()

    # -- the end -----------------------------------------------------------------------------
    def failed(self) -> list[Reader]:
        return [r for r in self.readers if r.stats.state is StreamState.FAILED]

    def summary_rows(self) -> list[str]:
        """A markdown table, one row per reader: frames, drops, reconnects, state, frame age."""
        lines = [
            "| stream | processed | read | dropped | reconnects | state | age p50 ms | age p99 ms |",
            "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
        ]
        for reader in self.readers:
            stats = reader.stats
            tallies = [t for name, t in self.tallies.items() if name in reader.stream_names]
            processed = sum(t.processed for t in tallies)
            ages = np.asarray([a for t in tallies for a in t.ages]) * 1000.0
            p50, p99 = np.percentile(ages, [50, 99]) if ages.size else (float("nan"), float("nan"))
            state = stats.state.value + (
                f" ({stats.last_error})" if stats.state is StreamState.FAILED else ""
            )
            lines.append(
                f"| {reader.stream} | {processed} | {stats.read} | {stats.dropped} | {stats.reconnects} | "
                f"{state} | {p50:.1f} | {p99:.1f} |"
            )
        return lines
