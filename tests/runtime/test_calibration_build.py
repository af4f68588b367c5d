"""Calibration sets: even video sampling, near-duplicate removal, lossless frames, manifest, errors."""

from __future__ import annotations

import hashlib
import json

import cv2
import numpy as np
import pytest
from edgercnn.runtime.calibration import (
    CalibrationError,
    build_calibration_set,
    evenly_spaced,
    iter_calibration_batches,
    list_calibration_images,
    sample_video_frames,
)
from edgercnn.runtime.config import ModelConfig
from edgercnn.runtime.preprocess import prepare_batch

from tests.builders.onnx_detector import model_config, write_images
from tests.cli import verb

main = verb("calibrate")

FRAMES = 40
STATIC = 20  # the first frames show an empty, unchanging scene


def _frame(index: int) -> np.ndarray:
    """Frame ``index``: a flat grey level that encodes the index (survives MJPEG), plus a moving square."""
    image = np.full((96, 128, 3), 40, np.uint8)
    if index >= STATIC:
        image[:, :64] = 40 + 6 * (index - STATIC + 1)
        x = 4 * (index - STATIC)
        cv2.rectangle(image, (64 + x % 56, 30), (72 + x % 56, 60), (0, 0, 255), -1)
    return image


def _decoded_index(frame: np.ndarray) -> int:
    level = float(frame[10:80, 8:56].mean())
    return STATIC - 1 + round((level - 40) / 6) if level > 43 else -1


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "camera.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (128, 96))
    assert writer.isOpened()
    for i in range(FRAMES):
        writer.write(_frame(i))
    writer.release()
    return path


def test_evenly_spaced_covers_the_whole_range():
    picks = evenly_spaced(1000, 10)
    assert len(picks) == 10 and picks[0] < 100 and picks[-1] >= 900
    assert np.all(np.diff(picks) == 100)
    assert evenly_spaced(5, 10) == [0, 1, 2, 3, 4]


def test_video_frames_are_sampled_evenly_and_are_the_frames_asked_for(video):
    frames = list(sample_video_frames(video, 8))
    indices = [index for index, _ in frames]
    assert indices == evenly_spaced(FRAMES, 8)
    for index, frame in frames:
        if index >= STATIC:
            assert _decoded_index(frame) == index


def test_near_duplicate_frames_of_a_static_scene_are_dropped(video, tmp_path):
    result = build_calibration_set([video], tmp_path / "set", count=30, frames_per_video=FRAMES)
    assert result.considered == FRAMES
    assert result.duplicates >= STATIC - 2  # the static frames collapse to (about) one
    kept_static = [item for item in result.items if item.frame is not None and item.frame < STATIC]
    assert len(kept_static) <= 2
    manifest = json.loads((tmp_path / "set" / "manifest.json").read_text())
    assert manifest["count"] == len(result.items) == len(list((tmp_path / "set").glob("calib_*.png")))
    for entry in manifest["images"]:
        data = (tmp_path / "set" / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]


def test_saved_frames_are_lossless_and_feed_prepare_batch_byte_for_byte(video, tmp_path):
    result = build_calibration_set([video], tmp_path / "set", count=4, frames_per_video=4, dedup_threshold=0)
    decoded = dict(sample_video_frames(video, 4))
    config = ModelConfig.from_dict(model_config(), "tiny")
    batches = list(iter_calibration_batches(tmp_path / "set", config))
    assert len(batches) == len(result.items) == 4
    for item, batch in zip(result.items, batches, strict=True):
        saved = cv2.imread(str(tmp_path / "set" / item.file), cv2.IMREAD_COLOR)
        assert np.array_equal(saved, decoded[item.frame])
        expected, _ = prepare_batch([decoded[item.frame]], config)
        assert batch.dtype == expected.dtype and np.array_equal(batch, expected)


def test_image_folders_and_foreign_manifests_are_read(tmp_path):
    write_images(tmp_path / "imgs", 6)
    result = build_calibration_set([tmp_path / "imgs"], tmp_path / "set", count=3)
    assert len(result.items) == 3
    (tmp_path / "imgs" / "manifest.json").write_text(json.dumps({"images": [{"file_name": "img_002.png"}]}))
    assert [p.name for p in list_calibration_images(tmp_path / "imgs")] == ["img_002.png"]
    assert len(list_calibration_images(tmp_path / "set", limit=2)) == 2


def test_bad_inputs_give_one_clear_error(tmp_path, capsys):
    with pytest.raises(CalibrationError, match="no such file"):
        build_calibration_set([tmp_path / "missing.mp4"], tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CalibrationError, match="no image or video"):
        build_calibration_set([tmp_path / "empty"], tmp_path / "out")
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "manifest.json").write_text(json.dumps({"images": ["gone.png"]}))
    with pytest.raises(CalibrationError, match=r"gone\.png"):
        list_calibration_images(tmp_path / "set")
    assert main([str(tmp_path / "nothing_here"), "--out", str(tmp_path / "o")]) == 2
    assert "nothing_here" in capsys.readouterr().err
