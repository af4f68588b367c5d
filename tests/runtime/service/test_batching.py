"""Batching across streams: full batches when streams deliver together, a deadline when one does not."""

from __future__ import annotations

import threading
import time

import numpy as np
from edgercnn.runtime.detections import Detections
from edgercnn.runtime.service.loop import Service, StreamFilter
from edgercnn.runtime.service.options import ReconnectPolicy, ServiceOptions
from edgercnn.runtime.service.outputs import StreamOutputs, unique_names
from edgercnn.runtime.service.readers import Board, Reader, StreamState
from edgercnn.runtime.sinks import JsonlSink
from edgercnn.runtime.sources import Frame

from tests.runtime.service.helpers import records


class _Ticking(Reader):
    """A live reader that posts a frame every ``period`` seconds (None: connected, never delivers)."""

    live = True

    def __init__(self, name: str, board: Board, period: float | None, count: int) -> None:
        super().__init__(name, board, lambda line: None)
        self.period, self.count = period, count

    def run(self) -> None:
        self._set_state(StreamState.LIVE)
        for i in range(self.count if self.period else 0):
            if self.stopping.wait(self.period):
                break
            frame = Frame(
                np.zeros((8, 8, 3), np.uint8), self.stream, i, time.time(), 0.0, live=True, stream=self.stream
            )
            self._post(frame)
        self.stopping.wait(None if self.period is None else 0.0)
        self._set_state(StreamState.ENDED)


class _Recorder:
    """Stands in for the Detector: records the streams of every batch."""

    batch_size = None

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.lock = threading.Lock()

    def detect(self, images, score_threshold=None, classes=None):
        empty = np.zeros((0, 4), np.float32)
        dets = Detections(empty, np.zeros(0, np.float32), np.zeros(0, np.int64), ("bg",), (8, 8))
        dets.timings = {"preprocess": 0.0, "infer": 0.0, "postprocess": 0.0, "batch": len(images)}
        return [dets for _ in images]


def _service(readers, board, timeout_s: float, batch: int) -> tuple[Service, list]:
    detector = _Recorder()
    options = ServiceOptions(batch_timeout_s=timeout_s, reconnect=ReconnectPolicy(stall_s=1.0))
    outputs = StreamOutputs(None, options, False, set())
    seen: list = []
    filters = {r.stream: StreamFilter(0.0) for r in readers}
    service = Service(detector, readers, board, filters, outputs, options, batch)
    original = service._process

    def process(frames):
        seen.append([f.stream for f in frames])
        original(frames)

    service._process = process  # type: ignore[method-assign]
    return service, seen


def test_streams_that_deliver_together_share_each_batch():
    board = Board()
    readers = [_Ticking(name, board, 0.05, 20) for name in ("a", "b", "c")]
    service, seen = _service(readers, board, timeout_s=0.04, batch=3)
    service.run()
    full = [b for b in seen if sorted(b) == ["a", "b", "c"]]
    assert len(full) >= 0.7 * len(seen), seen
    assert service.frames == 60


def test_a_stream_that_never_delivers_does_not_hold_the_others_past_the_deadline():
    board = Board()
    live = _Ticking("live", board, 0.05, 30)
    silent = _Ticking("silent", board, None, 0)  # connected (live state) but sends nothing
    service, seen = _service([live, silent], board, timeout_s=0.02, batch=2)
    thread = threading.Thread(target=service.run)
    start = time.monotonic()
    thread.start()
    while service.frames < 30 and time.monotonic() - start < 10:
        time.sleep(0.01)
    elapsed = time.monotonic() - start
    service.request_stop()
    thread.join(5)
    assert service.frames == 30 and all(b == ["live"] for b in seen)
    assert elapsed < 30 * 0.05 + 0.8  # each frame waited at most the deadline, not for the silent stream


def test_streams_take_turns_at_the_head_of_a_batch_too_small_for_all():
    board = Board()
    readers = [_Ticking(name, board, 0.03, 15) for name in ("a", "b", "c", "d")]
    service, seen = _service(readers, board, timeout_s=0.05, batch=2)
    service.run()
    per_stream = {name: sum(b.count(name) for b in seen) for name in "abcd"}
    assert service.frames == sum(per_stream.values())
    assert min(per_stream.values()) >= 0.5 * max(per_stream.values()), per_stream


def test_output_names_are_distinct_for_same_stems_and_same_urls():
    names = unique_names(["n/frame.jpg", "s/frame.jpg", "rtsp://h/cam", "rtsp://h/cam", "0", "x.avi"])
    assert names == ["n_frame", "s_frame", "h_cam", "h_cam-2", "camera0", "x"]
    assert unique_names(["a.avi", "b.avi"], ["gate", ""]) == ["gate", "b"]


def test_jsonl_rotates_by_time_and_every_segment_is_valid(tmp_path):
    sink = JsonlSink(tmp_path / "d.jsonl", rotate_seconds=0.05)
    empty = np.zeros((0, 4), np.float32)
    dets = Detections(empty, np.zeros(0, np.float32), np.zeros(0, np.int64), ("bg",), (8, 8))
    for i in range(6):
        sink.write(Frame(np.zeros((8, 8, 3), np.uint8), "cam", i, time.time(), 0.0), dets)
        time.sleep(0.03)
    sink.close()
    assert len(sink.segments) >= 3
    assert [r["frame"] for s in sink.segments for r in records(s)] == list(range(6))


def test_a_slow_stream_does_not_lower_a_fast_streams_rate():
    board = Board()
    fast = _Ticking("fast", board, 0.04, 50)  # 25 fps for 2 s
    slow = _Ticking("slow", board, 0.5, 4)  # 2 fps
    service, seen = _service([fast, slow], board, timeout_s=0.1, batch=2)
    start = time.monotonic()
    service.run()
    elapsed = time.monotonic() - start
    assert sum(b.count("fast") for b in seen) == 50
    assert elapsed < 50 * 0.04 + 0.5, f"{elapsed:.2f} s for 2 s of fast frames: the slow stream held them"
    waits = [b for b in seen if b == ["fast"]]
    assert len(waits) >= 40  # most batches went without the slow stream, which joins only when it has a frame


def test_stage_times_keep_a_bounded_window_for_months_long_runs():
    from edgercnn.runtime.stats import StageTimes

    times = StageTimes(max_samples=100)
    for i in range(1000):
        times.add("infer", i / 1000)
    summary = times.summary(("infer",))["infer"]
    assert summary["n"] == 100 and summary["p50"] > 900  # the newest samples only
