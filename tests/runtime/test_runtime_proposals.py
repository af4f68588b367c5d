"""Fast R-CNN mode inputs on the runtime side: motion regions of a video stream become proposals,
and per-image proposals in source pixels become the graph's padded graph-input-pixel inputs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from edgercnn.runtime.config import ModelConfig
from edgercnn.runtime.contract import PROPOSAL_COUNT_NAME, PROPOSALS_NAME
from edgercnn.runtime.detector import Detector
from edgercnn.runtime.errors import BackendError, ModelFormatError, UsageError
from edgercnn.runtime.matching import box_iou
from edgercnn.runtime.motion import MotionProposals, StreamMotionProposals, merge_boxes
from edgercnn.runtime.preprocess import compute_transform
from edgercnn.runtime.proposals import pack_proposals
from edgercnn.runtime.sources import Frame

from tests.builders.fixed_onnx import make_tiny_onnx, tiny_config, tiny_outputs
from tests.cli import verb

HEIGHT, WIDTH = 240, 320
SIDE_H, SIDE_W = 50, 40


def moving_rectangle_frames(frames: int = 40, step: int = 5, seed: int = 0):
    """A textured rectangle crossing a noisy static background: ``(frame, true box)`` per frame."""
    rng = np.random.default_rng(seed)
    background = rng.integers(60, 90, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    texture = rng.integers(0, 256, (SIDE_H, SIDE_W, 3), dtype=np.uint8)
    for t in range(frames):
        frame = background.copy()
        x, y = 20 + step * t, 100
        frame[y : y + SIDE_H, x : x + SIDE_W] = texture
        frame = cv2.add(frame, rng.integers(0, 6, frame.shape, dtype=np.uint8))
        yield frame, np.array([x, y, x + SIDE_W, y + SIDE_H], dtype=np.float32)


def test_motion_proposals_find_the_moving_rectangle_once_the_background_is_learnt():
    source = MotionProposals(max_proposals=32)
    best = []
    for t, (frame, truth) in enumerate(moving_rectangle_frames()):
        proposals = source(frame)
        assert proposals.shape[1:] == (4,) and len(proposals) <= 32
        if t >= 12:  # the rectangle's first position has left the background model by then
            best.append(box_iou(proposals[:1], truth[None])[0, 0])  # the largest region comes first
    assert min(best) >= 0.8, best


def test_a_static_scene_gives_no_motion_proposals():
    source = MotionProposals()
    rng = np.random.default_rng(1)
    background = rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    counts = [len(source(cv2.add(background, rng.integers(0, 4, background.shape, dtype=np.uint8))))
              for _ in range(30)]  # fmt: skip
    assert counts[5:] == [0] * 25


def test_each_stream_keeps_its_own_background_model():
    proposer = StreamMotionProposals(max_proposals=8)
    moving = list(moving_rectangle_frames(frames=12))
    still = moving[0][0]
    found = {"a": 0, "b": 0}
    for t, (frame, _) in enumerate(moving):
        for stream, image in (("a", frame), ("b", still)):
            boxes = proposer(Frame(image, stream, t, 0.0, 0.0, stream=stream))
            found[stream] += int(t >= 5 and len(boxes) > 0)
    assert found == {"a": 7, "b": 0}
    assert sorted(proposer.streams) == ["a", "b"]


def test_merge_boxes_joins_overlapping_and_nearby_boxes_and_keeps_distant_ones():
    boxes = np.array([[0, 0, 10, 10], [8, 8, 20, 20], [24, 0, 30, 6], [100, 100, 110, 110]], np.float32)
    merged = merge_boxes(boxes, gap=5.0)
    assert sorted(map(tuple, merged.tolist())) == [(0, 0, 30, 20), (100, 100, 110, 110)]
    assert len(merge_boxes(boxes, gap=0.0)) == 3


def test_a_frame_of_another_size_in_one_stream_is_refused_in_one_line():
    source = MotionProposals()
    source(np.zeros((HEIGHT, WIDTH, 3), np.uint8))
    with pytest.raises(UsageError, match="frame size changed from 320x240 to 160x120"):
        source(np.zeros((120, 160, 3), np.uint8))


def fast_rcnn_config(max_proposals: int = 4) -> ModelConfig:
    """A graph of 100x200 valid pixels (out of 128x224) for 200x400 source frames."""
    data = tiny_config("fasterrcnn", height=128, width=224, valid=(100, 200))
    data["input"].update(source_height=200, source_width=400, min_size=100, max_size=200)
    data["proposals"] = {"source": "external", "max_proposals": max_proposals}
    return ModelConfig.from_dict(data, "fast.onnx")


def test_proposals_are_clipped_scaled_into_graph_pixels_truncated_and_padded():
    config = fast_rcnn_config(max_proposals=3)
    transform = compute_transform(200, 400, config)  # scale 0.5
    per_image = [
        np.array([[10, 20, 110, 220], [-50, 0, 40, 40], [300, 300, 310, 310], [0, 0, 8, 8], [0, 0, 4, 4]]),
        np.zeros((0, 4)),
    ]
    feed = pack_proposals(per_image, [transform, transform], config, batch_rows=3)
    proposals, count = feed[PROPOSALS_NAME], feed[PROPOSAL_COUNT_NAME]
    assert proposals.shape == (3, 3, 4) and proposals.dtype == np.float32
    assert count.tolist() == [3, 0, 0]
    # clipped to the 400x200 frame, the off-frame box dropped, then halved; the fifth truncated
    np.testing.assert_allclose(proposals[0], [[5, 10, 55, 100], [0, 0, 20, 20], [0, 0, 4, 4]])
    assert not proposals[1:].any()


@pytest.mark.parametrize(
    ("boxes", "message"),
    [
        (np.zeros((2, 3)), r"image 0: proposals must be a \[k, 4\] array"),
        (np.array([[10, 0, 5, 5]]), "image 0: proposals must be x1, y1, x2, y2 with x1 <= x2"),
        (np.array([[0, 0, np.nan, 5]]), "image 0: proposals hold NaN"),
    ],
)
def test_malformed_proposals_are_refused_in_one_line(boxes, message):
    config = fast_rcnn_config()
    with pytest.raises(UsageError, match=message):
        pack_proposals([boxes], [compute_transform(200, 400, config)], config, batch_rows=1)


def test_the_config_of_a_fast_rcnn_mode_model_says_it_wants_proposals_and_round_trips():
    config = fast_rcnn_config(max_proposals=7)
    assert config.wants_proposals and config.max_proposals == 7 and config.roi_op == "align"
    written = config.to_dict()
    assert written["proposals"]["source"] == "external" and written["proposals"]["max_proposals"] == 7
    assert ModelConfig.from_dict(written, "again.onnx") == ModelConfig.from_dict(written, "again.onnx")
    rpn = ModelConfig.from_dict(tiny_config("fasterrcnn"), "rpn.onnx")
    assert not rpn.wants_proposals and "proposals" not in rpn.to_dict() and "roi_op" not in rpn.to_dict()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"proposals": {"source": "external"}}, "external proposals but no positive proposals.max_proposals"),
        ({"proposals": {"source": "selective"}}, "proposals.source 'selective'"),
        ({"roi_op": "warp"}, "roi_op 'warp'"),
    ],
)
def test_a_bad_proposals_or_roi_op_entry_is_refused_naming_the_file(change, message):
    data = {**tiny_config("fasterrcnn"), **change}
    with pytest.raises(ModelFormatError, match=f"bad.onnx: model config has .*{message}"):
        ModelConfig.from_dict(data, "bad.onnx")


def test_run_refuses_motion_proposals_for_a_model_with_its_own_rpn(tmp_path, capsys):
    raw = tiny_config("fasterrcnn")
    model = make_tiny_onnx(tmp_path / "rpn.onnx", raw, tiny_outputs(raw, 3))
    code = verb("run")(["--model", str(model), "--source", str(tmp_path), "--proposals", "motion"])
    err = capsys.readouterr().err
    assert code == 2 and "runs its own RPN" in err and "--proposals external" in err


class ImagesOnlyBackend:
    """A backend that, like the TensorRT and Triton ones, feeds nothing but the image batch."""

    name = "images-only"
    inputs = ()
    outputs = ()

    def infer(self, batch):
        raise AssertionError("never reached")

    def close(self):
        pass


def test_a_fast_rcnn_mode_model_on_a_backend_that_feeds_only_images_is_refused_in_one_line():
    with pytest.raises(
        BackendError, match=r"fast\.onnx: is a Fast R-CNN mode model .* run it on onnxruntime"
    ):
        Detector(fast_rcnn_config(), ImagesOnlyBackend())
