"""Sinks survive interruption: what was written before an error, Ctrl-C, SIGTERM or SIGKILL stays readable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from edgercnn.runtime.config import ModelConfig
from edgercnn.runtime.draw import annotate, class_colour
from edgercnn.runtime.postprocess import postprocess
from edgercnn.runtime.preprocess import ImageTransform
from edgercnn.runtime.sinks import (
    CocoResultsSink,
    ImageSink,
    JsonlSink,
    SinkSet,
    VideoSink,
    recover_coco_partial,
)
from edgercnn.runtime.sources import Frame

from tests.builders.fixed_onnx import make_tiny_onnx, tiny_config, tiny_outputs
from tests.paths import REPO_ROOT


def _detections(seed: int = 0):
    raw = tiny_config(detections=6)
    config = ModelConfig.from_dict(raw, "tiny.onnx")
    (dets,) = postprocess(tiny_outputs(raw, 4, seed), [ImageTransform(96, 128, 96, 128, 1.0)], config)
    return dets


def _video_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    count = 0
    while cap.read()[0]:
        count += 1
    cap.release()
    return count


class _SignalsSelfDuringWrite:
    """A sink that raises Ctrl-C at the process while a frame is half written."""

    def __init__(self) -> None:
        self.frames: list[int] = []

    def write(self, frame, dets, annotated=None) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)  # give an unheld signal every chance to land here
        self.frames.append(frame.index)

    def close(self) -> None:
        pass


def test_ctrl_c_during_a_write_lands_after_every_sink_has_the_frame(tmp_path):
    first, last = _SignalsSelfDuringWrite(), JsonlSink(tmp_path / "d.jsonl")
    frame = Frame(np.zeros((96, 128, 3), np.uint8), "cam", 0, 0.0, 0.0)
    with pytest.raises(KeyboardInterrupt), SinkSet([first, last]) as sinks:
        sinks.write(frame, _detections())
    assert first.frames == [0]
    assert [json.loads(line)["frame"] for line in (tmp_path / "d.jsonl").read_text().splitlines()] == [0]


def test_all_outputs_are_complete_after_an_error_mid_run(tmp_path):
    dets = _detections()
    image = np.full((96, 128, 3), 90, np.uint8)
    sinks = [
        JsonlSink(tmp_path / "d.jsonl"),
        CocoResultsSink(tmp_path / "r.json"),
        ImageSink(tmp_path / "images"),
        VideoSink(tmp_path / "videos", fps=10),
    ]
    with pytest.raises(RuntimeError, match="model crashed"), SinkSet(sinks) as sink_set:
        for i in range(5):
            sink_set.write(
                Frame(image, "cam.mp4", i, time.time(), 0.0, position_s=i / 10), dets, annotate(image, dets)
            )
        raise RuntimeError("model crashed")
    lines = (tmp_path / "d.jsonl").read_text().splitlines()
    assert [json.loads(line)["frame"] for line in lines] == list(range(5))
    results = json.loads((tmp_path / "r.json").read_text())
    assert len(results) == 5 * len(dets)
    x1, y1, x2, y2 = dets.boxes[0].tolist()
    assert results[0]["bbox"] == pytest.approx([x1, y1, x2 - x1, y2 - y1], abs=0.01)
    assert _video_frames(tmp_path / "videos" / "cam.annotated.mp4") == 5
    assert not list((tmp_path / "videos").glob("*.partial*"))
    assert len(list((tmp_path / "images").glob("*.jpg"))) == 5


KILL_SCRIPT = """
import sys, time, os, signal
import numpy as np
from pathlib import Path
from tests.runtime.test_runtime_sinks import _detections
from edgercnn.runtime.sinks import JsonlSink, CocoResultsSink
from edgercnn.runtime.sources import Frame
out = Path(sys.argv[1])
jsonl, coco = JsonlSink(out / "d.jsonl"), CocoResultsSink(out / "r.json")
dets = _detections()
for i in range(7):
    frame = Frame(np.zeros((96, 128, 3), np.uint8), "x.jpg", i, time.time(), 0.0)
    jsonl.write(frame, dets)
    coco.write(frame, dets)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_jsonl_and_coco_results_survive_sigkill(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(tmp_path)], capture_output=True, timeout=120, cwd=REPO_ROOT
    )
    assert result.returncode == -signal.SIGKILL
    lines = (tmp_path / "d.jsonl").read_text().splitlines()
    assert [json.loads(line)["frame"] for line in lines] == list(range(7))
    assert not (tmp_path / "r.json").exists()  # never closed: the streamed .partial holds everything
    assert len(recover_coco_partial(tmp_path / "r.json.partial")) == 7 * 4


SLOW_RUN = """
import sys, time
import edgercnn.runtime.detector as d
original = d.Detector.detect
def slow(self, images, **kw):
    time.sleep(0.05)  # a slow model, so that the signal lands mid-run
    return original(self, images, **kw)
d.Detector.detect = slow
from edgercnn.cli import main
sys.exit(main(["run", *sys.argv[1:]]))
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_run_interrupted_by_a_signal_keeps_every_output_readable(tmp_path, sig):
    raw = tiny_config()
    model = make_tiny_onnx(tmp_path / "m.onnx", raw, tiny_outputs(raw, 3))
    video = tmp_path / "in.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (128, 96))
    for i in range(300):
        writer.write(np.full((96, 128, 3), i % 256, np.uint8))
    writer.release()
    out = tmp_path / "out"
    args = ["--model", str(model), "--source", str(video), "--out", str(out), "--no-progress"]
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_RUN, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    jsonl = out / "detections.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if jsonl.exists() and len(jsonl.read_text().splitlines()) >= 5:
            break
        time.sleep(0.02)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    frames = [json.loads(line)["frame"] for line in jsonl.read_text().splitlines()]
    assert 5 <= len(frames) < 300 and frames == list(range(len(frames)))
    assert len(json.loads((out / "results.coco.json").read_text())) == 3 * len(frames)
    assert _video_frames(out / "videos" / "in.annotated.mp4") == len(frames)


def test_class_colours_are_stable_and_distinct():
    colours = [class_colour(i) for i in range(1, 12)]
    assert colours == [class_colour(i) for i in range(1, 12)]
    assert len(set(colours)) == len(colours)


def test_annotation_draws_inside_the_boxes_and_leaves_the_rest(tmp_path):
    dets = _detections(seed=4)
    image = np.full((96, 128, 3), 255, np.uint8)
    drawn = annotate(image, dets)
    changed = np.any(drawn != image, axis=2)
    assert changed.any()
    inside = np.zeros_like(changed)
    for x1, y1, x2, y2 in dets.boxes.tolist():
        inside[max(int(y1) - 20, 0) : int(y2) + 4, max(int(x1) - 4, 0) : int(x2) + 80] = True
    assert not (changed & ~inside).any()
    assert np.array_equal(image, np.full((96, 128, 3), 255, np.uint8))  # the input is not modified
    ImageSink(tmp_path).write(Frame(image, "a.jpg", 0, 0.0, 0.0), dets, drawn)
    assert cv2.imread(str(tmp_path / "a.jpg")).shape == image.shape
    assert os.listdir(tmp_path) == ["a.jpg"]
