"""``bench``: models side by side, per-stage percentiles, markdown / json / plot, --json on stdout."""

from __future__ import annotations

import json

from tests.builders.fixed_onnx import make_tiny_onnx, tiny_config, tiny_outputs
from tests.cli import verb

main = verb("bench")


def test_bench_compares_models_and_writes_every_report(tmp_path, capsys):
    paths = []
    for name, arch in (("mask.onnx", "maskrcnn"), ("kp.onnx", "keypointrcnn")):
        raw = tiny_config(arch)
        paths.append(str(make_tiny_onnx(tmp_path / name, raw, tiny_outputs(raw, 3))))
    code = main(["--model", *paths, "--runs", "4", "--warmup", "1", "--size", "160", "120",
                 "--out", str(tmp_path / "out"), "--json"])  # fmt: skip
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert [e["model"] for e in report["entries"]] == paths
    assert report["image_size"] == [160, 120]
    assert report["timing"].startswith("round robin")
    for entry in report["entries"]:
        assert set(entry["stages"]) == {"decode", "preprocess", "infer", "postprocess", "total"}
        assert all(entry["stages"][s]["n"] == 4 for s in entry["stages"])
        total = entry["stages"]["total"]
        assert total["p50"] <= total["p90"] <= total["p99"]
        assert entry["detections_last_frame"] == 3 and entry["rss_added_mb"] >= 0
    markdown = (tmp_path / "out" / "bench.md").read_text()
    assert "mask.onnx" in markdown and "kp.onnx" in markdown
    assert json.loads((tmp_path / "out" / "bench.json").read_text()) == report
    assert (tmp_path / "out" / "bench.png").read_bytes()[:4] == b"\x89PNG"


def test_bench_on_a_missing_model_is_one_line(tmp_path, capsys):
    assert main(["--model", str(tmp_path / "none.onnx"), "--runs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "none.onnx" in err[0]
