"""``run`` end to end: a model on images, a video and bad inputs; outputs agree with the Detector."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from edgercnn.runtime.detector import Detector

from tests.builders.fixed_onnx import make_tiny_onnx, tiny_config, tiny_outputs
from tests.cli import verb

main = verb("run")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    raw = tiny_config(detections=8)
    return make_tiny_onnx(tmp_path_factory.mktemp("model") / "tiny.onnx", raw, tiny_outputs(raw, 6, seed=3))


def _inputs(folder):
    rng = np.random.default_rng(0)
    folder.mkdir()
    images = {f"img{i}.jpg": rng.integers(0, 256, (90 + 10 * i, 120, 3), dtype=np.uint8) for i in range(3)}
    for name, img in images.items():
        cv2.imwrite(str(folder / name), img)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    video = folder.parent / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for i in range(4):
        writer.write(np.full((120, 160, 3), 30 * i, np.uint8))
    writer.release()
    return images, video


def test_run_end_to_end_writes_outputs_that_match_the_detector(tiny_model, tmp_path, capsys):
    images, video = _inputs(tmp_path / "imgs")
    out = tmp_path / "out"
    sources = [str(tmp_path / "imgs"), str(video)]
    options = ["--score", "0.3", "--classes", "car,plate", "--batch", "2", "--no-progress"]
    code = main(["--model", str(tiny_model), "--source", *sources, "--out", str(out), *options])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "broken.jpg" in err and "7 frames" in err and "1 inputs skipped" in err
    for stage in ("decode", "preprocess", "infer", "postprocess", "sink"):
        assert f"| {stage} |" in err
    records = [json.loads(line) for line in (out / "detections.jsonl").read_text().splitlines()]
    assert len(records) == 7
    detector = Detector.open(tiny_model, score_threshold=0.3, classes=["car", "plate"])
    stills = [r for r in records if r["source"].endswith(".jpg")]
    clip = [r for r in records if r["source"].endswith(".avi")]
    assert len(stills) == 3 and {r["stream"] for r in stills} == {"img0", "img1", "img2"}
    for record in stills:
        image = cv2.imread(record["source"])
        (expected,) = detector.detect([image])
        assert [d["name"] for d in record["detections"]] == expected.label_names
        assert all(name in ("car", "plate") for name in expected.label_names)
        assert all(d["score"] >= 0.3 for d in record["detections"])
        got = np.array([d["box"] for d in record["detections"]]).reshape(-1, 4)
        np.testing.assert_allclose(got, expected.boxes, atol=0.01)
    assert [r["frame"] for r in clip] == [0, 1, 2, 3]  # the video's frames in order, beside the images
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(images)
    cap = cv2.VideoCapture(str(out / "videos" / "clip.annotated.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
    coco = json.loads((out / "results.coco.json").read_text())
    assert coco and len(coco) == sum(len(r["detections"]) for r in records)
    assert all("segmentation" in c for c in coco)


def test_run_refuses_a_model_without_metadata_in_one_line(tmp_path, capsys):
    bad = tmp_path / "plain.onnx"
    bad.write_bytes(b"\x08\x09")  # ir_version only: valid protobuf, no edgercnn.config
    code = main(["--model", str(bad), "--source", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "plain.onnx" in err[0] and "edgercnn.config" in err[0]


def test_run_with_only_bad_inputs_exits_non_zero(tiny_model, tmp_path, capsys):
    (tmp_path / "empty.png").write_bytes(b"")
    code = main(["--model", str(tiny_model), "--source", str(tmp_path / "empty.png"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and "empty.png: empty file" in err


def test_unknown_class_name_is_a_clear_error(tiny_model, tmp_path, capsys):
    code = main(["--model", str(tiny_model), "--source", str(tmp_path), "--classes", "giraffe"])
    assert code == 2 and "unknown class 'giraffe'" in capsys.readouterr().err


def test_show_without_a_display_is_refused(tiny_model, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    code = main(["--model", str(tiny_model), "--source", str(tmp_path), "--show"])
    assert code == 2 and "--show" in capsys.readouterr().err


def test_plugin_lib_reaches_the_backend_as_the_users_choice(tiny_model, tmp_path, monkeypatch, capsys):
    seen = {}
    original = Detector.open.__func__

    def spy(cls, path, **kwargs):
        seen.update(kwargs)
        kwargs.pop("plugin_lib", None)  # the ONNX backend has no plugins to load
        return original(cls, path, **kwargs)

    monkeypatch.setattr(Detector, "open", classmethod(spy))
    lib = tmp_path / "libmine.so"
    lib.write_bytes(b"")  # the parser refuses a library that is not there
    code = main(
        ["--model", str(tiny_model), "--source", str(tmp_path), "--plugin-lib", str(lib), "--no-progress"]
    )
    assert code == 1 and seen["plugin_lib"] == str(lib)  # exit 1: the folder holds no inputs
