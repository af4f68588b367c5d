"""Sources: every kind of input opens, bad inputs get one line naming them, and the run goes on."""

from __future__ import annotations

import socket
import struct
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from edgercnn.runtime.service.options import ReconnectPolicy
from edgercnn.runtime.service.readers import Board, LiveReader, StreamState
from edgercnn.runtime.sources import (
    Frame,
    ImageConversionError,
    LiveSource,
    SourceProblem,
    VideoFileSource,
    open_sources,
    to_bgr8,
)


def _read_live(spec: str, opener=None, take_every_s: float = 0.0) -> tuple[list[Frame], LiveReader]:
    """A live reader that gives up after one failed open; frames taken off its board as they come."""
    board = Board()
    lines: list[str] = []
    kwargs = {} if opener is None else {"opener": opener}
    reader = LiveReader("cam", spec, ReconnectPolicy(attempts=1, stall_s=5.0), board, lines.append, **kwargs)
    reader.start()
    taken: list[Frame] = []
    while True:
        with board.cond:
            frames, _ = board.take(1, ["cam"])
            if not frames and (reader.finished or reader.stats.state is StreamState.RECONNECTING):
                break
            if not frames:
                board.cond.wait(0.05)
        taken.extend(frames)
        if frames and take_every_s:
            time.sleep(take_every_s)
    reader.stop()
    reader.join(10)
    reader.lines = lines
    return taken, reader


def _collect(specs: list[str]) -> tuple[list[Frame], list[SourceProblem]]:
    frames, problems = [], []
    for src in open_sources(specs):
        if isinstance(src, SourceProblem):
            problems.append(src)
            continue
        if isinstance(src, LiveSource):
            got, reader = _read_live(src.spec)
            frames.extend(got)
            if reader.stats.state is StreamState.FAILED:
                problems.append(SourceProblem(src.name, reader.stats.last_error))
            continue
        for item in src.frames():
            (problems if isinstance(item, SourceProblem) else frames).append(item)
    return frames, problems


def _write_png_grey_alpha(path: Path, pixels: np.ndarray) -> None:
    """A 2-channel (grey + alpha) PNG; OpenCV cannot write one."""
    h, w, _ = pixels.shape
    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", w, h, 8, 4, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _write_video(path: Path, frames: int, size: tuple[int, int] = (64, 48)) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), (i * 7) % 256, np.uint8))
    writer.release()


def _closed_local_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed when the with-block ends: connections are refused


def test_bad_inputs_get_one_line_each_and_good_ones_still_run(tmp_path):
    rng = np.random.default_rng(0)
    good = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "good.png"), good)
    (tmp_path / "empty.jpg").write_bytes(b"")
    _, jpg = cv2.imencode(".jpg", good)
    (tmp_path / "truncated.jpg").write_bytes(jpg.tobytes()[: len(jpg) // 2])
    _, png = cv2.imencode(".png", good)
    (tmp_path / "truncated.png").write_bytes(png.tobytes()[: len(png) // 2])
    (tmp_path / "notes.png").write_text("not an image")
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "garbage.mp4").write_bytes(b"\x00garbage" * 64)
    port = _closed_local_port()
    specs = [
        str(tmp_path),
        f"http://127.0.0.1:{port}/stream",
        str(tmp_path / "missing.jpg"),
        str(tmp_path / "*.xyz"),
    ]
    start = time.monotonic()
    frames, problems = _collect(specs)
    assert time.monotonic() - start < 30
    assert [Path(f.source).name for f in frames] == ["good.png"]
    np.testing.assert_array_equal(frames[0].image, good)
    named = {Path(p.source).name if "://" not in p.source else "url": p for p in problems}
    expected = {"empty.jpg", "truncated.jpg", "truncated.png", "notes.png", "empty.mp4", "garbage.mp4"}
    assert expected | {"url", "missing.jpg", "*.xyz"} == set(named)
    for p in problems:
        assert p.is_error and p.source in str(p) and "\n" not in str(p)
    assert "0 bytes" in named["empty.mp4"].message and "0 bytes" in named["empty.jpg"].message
    assert "truncated" in named["truncated.jpg"].message


def test_grey_alpha_and_16_bit_images_are_converted_with_a_note(tmp_path):
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "grey.png"), grey)
    _write_png_grey_alpha(tmp_path / "grey_alpha.png", np.stack([grey, np.full_like(grey, 128)], 2))
    bgra = rng.integers(0, 256, (20, 30, 4), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "bgra.png"), bgra)
    deep = rng.integers(0, 65536, (20, 30, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), deep)
    frames, problems = _collect([str(tmp_path / "*.png")])
    by_name = {Path(f.source).name: f.image for f in frames}
    assert all(img.dtype == np.uint8 and img.shape == (20, 30, 3) for img in by_name.values())
    np.testing.assert_array_equal(by_name["grey.png"], np.repeat(grey[:, :, None], 3, 2))
    np.testing.assert_array_equal(by_name["grey_alpha.png"], np.repeat(grey[:, :, None], 3, 2))
    np.testing.assert_array_equal(by_name["bgra.png"], bgra[:, :, :3])
    np.testing.assert_array_equal(by_name["deep.png"], np.round(deep / 257.0).astype(np.uint8))
    notes = {Path(p.source).name for p in problems if not p.is_error}
    assert notes == {"grey.png", "grey_alpha.png", "bgra.png", "deep.png"}


def test_to_bgr8_refuses_what_it_cannot_convert():
    with pytest.raises(ImageConversionError, match="pixel type"):
        to_bgr8(np.zeros((4, 4, 3), np.int32))
    with pytest.raises(ImageConversionError, match="shape"):
        to_bgr8(np.zeros((4, 4, 5), np.uint8))


def test_video_file_gives_every_frame_in_order(tmp_path):
    _write_video(tmp_path / "clip.avi", 12)
    source = VideoFileSource(tmp_path / "clip.avi")
    frames = [f for f in source.frames() if isinstance(f, Frame)]
    assert [f.index for f in frames] == list(range(12)) and source.dropped == 0
    assert [int(f.image[0, 0, 0]) for f in frames] == pytest.approx([(i * 7) % 256 for i in range(12)], abs=3)


def test_live_reader_keeps_only_the_newest_frame_and_counts_drops(tmp_path):
    _write_video(tmp_path / "feed.avi", 60)
    captures = iter([cv2.VideoCapture(str(tmp_path / "feed.avi"))])  # read as a stream: it never waits

    def opener(spec, timeout_s):
        return next(captures, None) or cv2.VideoCapture()  # once; then a stream that cannot be opened

    taken, reader = _read_live("feed", opener=opener, take_every_s=0.02)  # a slow model
    indices = [f.index for f in taken]
    assert all(f.live and f.stream == "cam" for f in taken)
    assert indices == sorted(set(indices))  # in order, never repeated
    assert reader.stats.dropped > 0
    assert len(indices) + reader.stats.dropped == 60  # each frame read: processed or counted
    assert reader.stats.read == 60 and reader.stats.reconnects == 1  # the end of the feed is a lost stream


def test_gstreamer_pipeline_without_gstreamer_support_is_one_clear_line():
    from edgercnn.runtime.sources import gstreamer_available

    frames, problems = _collect(["videotestsrc num-buffers=3 ! videoconvert ! appsink"])
    if gstreamer_available():
        assert len(frames) == 3
    else:
        assert len(problems) == 1 and "GStreamer" in problems[0].message
