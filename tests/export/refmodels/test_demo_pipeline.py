"""The README's main job: the demo runs every stage and leaves its outputs behind."""

from __future__ import annotations

import json

from tests.cli import verb
from tests.paths import REPO_ROOT

demo_main = verb("demo")


def test_demo_exports_compares_and_runs_the_sample_video(tmp_path, capsys) -> None:
    status = demo_main(["--out", str(tmp_path), "--val-images", "3", "--max-frames", "6", "--skip-int8"])
    printed = capsys.readouterr().out
    assert status == 0, printed
    assert (tmp_path / "onnx" / "model.onnx").is_file() and (tmp_path / "onnx" / "model.trt.onnx").is_file()
    # parity table: every candidate matched every eager detection on the generated images
    rows = [
        line for line in printed.splitlines() if line.startswith(("| deploy", "| portable", "| tensorrt"))
    ]
    assert len(rows) == 3 and all("100.00%" in row for row in rows), rows
    frames = [json.loads(line) for line in (tmp_path / "run" / "detections.jsonl").read_text().splitlines()]
    assert [f["frame"] for f in frames] == list(range(6))
    assert any(f["detections"] for f in frames)
    assert (tmp_path / "run" / "videos" / "synth_street.annotated.mp4").stat().st_size > 0
    assert (tmp_path / "bench" / "bench.json").is_file()


def test_demo_names_a_missing_input(tmp_path, capsys) -> None:
    status = demo_main(["--out", str(tmp_path), "--video", str(REPO_ROOT / "samples" / "nope.mp4")])
    assert status == 2
    # refused by the parser now, before any export starts, in the flags' common wording
    assert "--video: " in (err := capsys.readouterr().err) and "nope.mp4 does not exist" in err
