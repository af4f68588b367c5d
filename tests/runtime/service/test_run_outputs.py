"""Outputs lose nothing: new run folders, names by stream, the source's frame rate, rotation, disk full."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from edgercnn.runtime.sinks import recover_coco_partial

from tests.cli import verb
from tests.runtime.service.helpers import CLI, dynamic_model, records, write_video

main = verb("run")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return dynamic_model(tmp_path_factory.mktemp("model"))


def _tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_an_out_folder_with_results_is_left_alone_and_the_run_writes_beside_it(model, tmp_path, capsys):
    video = write_video(tmp_path / "clip.avi", 5)
    out = tmp_path / "out"
    assert main(["--model", str(model), "--source", str(video), "--out", str(out), "--no-progress"]) == 0
    before = _tree_digest(out)
    assert main(["--model", str(model), "--source", str(video), "--out", str(out), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert _tree_digest(out) == before  # not one byte of the first run changed
    second = tmp_path / "out-2"
    assert f"{out} already holds results" in err and f"outputs in {second}" in err
    assert len(records(second / "detections.jsonl")) == 5
    assert (second / "videos" / "clip.annotated.mp4").exists()


def test_same_file_names_in_different_folders_get_distinct_outputs(model, tmp_path):
    rng = np.random.default_rng(1)
    for folder in ("north", "south"):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / "frame.jpg"), rng.integers(0, 256, (96, 128, 3), dtype=np.uint8))
        write_video(tmp_path / folder / "clip.avi", 3)
    out = tmp_path / "out"
    sources = [str(tmp_path / "north"), str(tmp_path / "south")]
    assert main(["--model", str(model), "--source", *sources, "--out", str(out), "--no-progress"]) == 0
    assert sorted(p.name for p in (out / "images").iterdir()) == ["north_frame.jpg", "south_frame.jpg"]
    assert sorted(p.name for p in (out / "videos").iterdir()) == [
        "north_clip.annotated.mp4",
        "south_clip.annotated.mp4",
    ]
    streams = {r["stream"] for r in records(out / "detections.jsonl")}
    assert streams == {"north_frame", "south_frame", "north_clip", "south_clip"}


def test_an_out_that_is_a_file_is_one_clear_line_and_untouched(model, tmp_path, capsys):
    video = write_video(tmp_path / "clip.avi", 2)
    target = tmp_path / "out"
    target.write_text("my notes")
    code = main(["--model", str(model), "--source", str(video), "--out", str(target), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and str(target) in err[0] and "is a file" in err[0]
    assert target.read_text() == "my notes"


def test_an_unwritable_out_folder_is_one_clear_line(model, tmp_path, capsys):
    video = write_video(tmp_path / "clip.avi", 2)
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    code = main(
        ["--model", str(model), "--source", str(video), "--out", str(blocker / "sub"), "--no-progress"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code in (1, 2) and "Traceback" not in "\n".join(err)
    # the parser refuses it before the model opens: the error is the only line
    assert len(err) == 1 and "blocker" in err[-1] and "cannot" in err[-1]


def test_written_videos_keep_the_source_frame_rate(model, tmp_path):
    slow = write_video(tmp_path / "slow.avi", 4, fps=7.0)
    fast = write_video(tmp_path / "fast.avi", 4, fps=30.0)
    out = tmp_path / "out"
    assert (
        main(["--model", str(model), "--source", str(slow), str(fast), "--out", str(out), "--no-progress"])
        == 0
    )
    for name, fps in (("slow", 7.0), ("fast", 30.0)):
        cap = cv2.VideoCapture(str(out / "videos" / f"{name}.annotated.mp4"))
        assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(fps, rel=0.01)
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
        cap.release()


def test_jsonl_rotates_by_size_into_valid_segments(model, tmp_path):
    video = write_video(tmp_path / "clip.avi", 40)
    out = tmp_path / "out"
    args = ["--model", str(model), "--source", str(video), "--out", str(out), "--rotate-mb", "0.002"]
    assert main([*args, "--no-progress", "--no-video"]) == 0
    segments = sorted(out.glob("detections.*.jsonl"))
    assert len(segments) > 3 and not (out / "detections.jsonl").exists()
    frames = [r["frame"] for s in segments for r in records(s)]
    assert frames == list(range(40))  # nothing lost, nothing repeated, in order across segments
    assert all(s.stat().st_size < 2000 + 1500 for s in segments)


DISK_FULL = """
set -e
mount -t tmpfs -o size={size} tmpfs {mnt}
set +e
{python} -c '{cli}' run --model {model} --source {video} --out {mnt}/out --no-progress --rle \\
  > {log}.out 2> {log}
echo $? > {log}.rc
cp -a {mnt}/out {copy}
"""


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux unshare for a private tmpfs")
def test_disk_full_is_one_line_and_leaves_only_valid_files_under_final_names(model, tmp_path):
    video = write_video(tmp_path / "clip.avi", 400, size=(320, 240))
    mnt, copy, log = tmp_path / "mnt", tmp_path / "copy", tmp_path / "log"
    mnt.mkdir()
    script = DISK_FULL.format(
        size="200k", mnt=mnt, python=sys.executable, cli=CLI, model=model, video=video, log=log, copy=copy
    )
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    err = log.read_text().strip().splitlines()
    assert int(Path(f"{log}.rc").read_text()) == 1
    assert "Traceback" not in log.read_text()
    assert "disk full" in err[-1] and "edgercnn run: error:" in err[-1], err
    lines = records(copy / "detections.jsonl")  # every line is whole JSON
    assert lines and [r["frame"] for r in lines] == list(range(len(lines)))
    final_video = copy / "videos" / "clip.annotated.mp4"
    if final_video.exists():  # under its final name only if it plays
        assert cv2.VideoCapture(str(final_video)).read()[0]
    assert not final_video.exists() or final_video.stat().st_size > 0
    if (copy / "results.coco.json").exists():
        json.loads((copy / "results.coco.json").read_text())
    else:  # the streamed results stop where the JSONL stopped, and are recoverable
        kept = recover_coco_partial(copy / "results.coco.json.partial")
        assert {r["image_id"] for r in kept} <= set(range(1, len(lines) + 1))


def test_a_metrics_port_in_use_is_one_line_and_creates_no_outputs(model, tmp_path, capsys):
    import socket

    video = write_video(tmp_path / "clip.avi", 2)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = tmp_path / "out"
        code = main(
            [
                "--model",
                str(model),
                "--source",
                str(video),
                "--out",
                str(out),
                "--metrics-port",
                str(port),
                "--no-progress",
            ]
        )
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        code == 2 and f"--metrics-port {port}: cannot listen" in err[-1] and "Traceback" not in "\n".join(err)
    )
    assert not out.exists()
