"""Detector: batching over fixed and dynamic batch graphs, uint8-input graphs, backend selection."""

from __future__ import annotations

import numpy as np
import pytest
from edgercnn.runtime.backends import open_backend
from edgercnn.runtime.backends.onnxruntime import choose_providers
from edgercnn.runtime.detector import Detector
from edgercnn.runtime.errors import BackendError

from tests.builders.fixed_onnx import make_tiny_onnx, tiny_config, tiny_outputs


def _frames(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(n)
    return [rng.integers(0, 256, (90 + 20 * i, 130, 3), dtype=np.uint8) for i in range(n)]


@pytest.mark.parametrize("batch", [1, 2, "dynamic"])
def test_any_number_of_frames_gives_one_result_each_in_order(tmp_path, batch):
    raw = tiny_config(batch=batch, detections=6)
    outputs = tiny_outputs(raw, 4)
    detector = Detector.open(make_tiny_onnx(tmp_path / "m.onnx", raw, outputs))
    frames = _frames(5)
    results = detector.detect(frames)
    assert len(results) == 5
    step = 5 if batch == "dynamic" else batch
    chunk_sizes = [min(step, 5 - (i // step) * step) for i in range(5)]  # frames in each one's batch
    for frame, dets, chunk in zip(frames, results, chunk_sizes, strict=True):
        assert dets.image_size == frame.shape[:2] and len(dets) == 4
        assert (dets.boxes[:, 2] <= frame.shape[1]).all() and (dets.boxes[:, 3] <= frame.shape[0]).all()
        assert dets.timings["batch"] == chunk


def test_uint8_graph_gets_bgr_uint8_batches(tmp_path):
    raw = tiny_config(dtype="uint8")
    detector = Detector.open(make_tiny_onnx(tmp_path / "m.onnx", raw, tiny_outputs(raw, 2)))
    assert detector.backend.inputs[0].dtype == "uint8"
    (dets,) = detector.detect(_frames(1))
    assert len(dets) == 2


def test_score_and_class_filters_can_change_per_call(tmp_path):
    raw = tiny_config(detections=8)
    outputs = tiny_outputs(raw, 8, seed=1)
    detector = Detector.open(make_tiny_onnx(tmp_path / "m.onnx", raw, outputs), score_threshold=0.0)
    (all_dets,) = detector.detect(_frames(1))
    (few,) = detector.detect(_frames(1), score_threshold=float(np.sort(all_dets.scores)[-3]))
    assert len(all_dets) == 8 and len(few) == 3
    (people,) = detector.detect(_frames(1), classes=["person"])
    assert len(people) == int((outputs["labels"][0] == 1).sum())


def test_gpu_providers_asked_for_but_missing_is_a_clear_error(tmp_path):
    with pytest.raises(BackendError, match="CUDAExecutionProvider"):
        choose_providers("cuda", ["CPUExecutionProvider"], tmp_path / "m.onnx")
    assert choose_providers("auto", ["CUDAExecutionProvider", "CPUExecutionProvider"], tmp_path) == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]


def test_unknown_backend_and_bad_threads_are_refused(tmp_path):
    raw = tiny_config()
    model = make_tiny_onnx(tmp_path / "m.onnx", raw, tiny_outputs(raw, 1))
    with pytest.raises(BackendError, match="unknown backend 'coreml'"):
        open_backend(model, backend="coreml")
    with pytest.raises(BackendError, match="threads"):
        open_backend(model, threads=0)
    backend = open_backend(model, threads=1, device="cpu")
    assert backend.name == "onnxruntime[CPUExecutionProvider]"
    assert [o.name for o in backend.outputs] == raw["outputs"]
