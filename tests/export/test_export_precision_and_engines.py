"""export.py --precision int8 --calib DIR --engine: Q/DQ files, a calibration cache, the engine command."""

from __future__ import annotations

import onnx

from tests.cli import verb
from tests.paths import REPO_ROOT

export_main = verb("export")
CARD = str(REPO_ROOT / "models" / "ref_fasterrcnn.json")


def test_int8_export_writes_qdq_models_cache_and_the_engine_command(tmp_path, capsys) -> None:
    calib = str(REPO_ROOT / "calib_data" / "synth")
    status = export_main(
        ["--card", CARD, "--flavour", "portable", "--precision", "int8", "--calib", calib, "--engine",
         "--out", str(tmp_path)]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert status == 0, captured.err
    for name in ("model.int8.cpu.onnx", "model.int8.trt.onnx"):
        model = onnx.load(str(tmp_path / name))
        ops = {node.op_type for node in model.graph.node}
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops, name
        assert '"precision": "int8-qdq"' in {p.key: p.value for p in model.metadata_props}["edgercnn.config"]
    cache = (tmp_path / "model.calib.cache").read_text().splitlines()
    assert cache[0].startswith("TRT-") and len(cache) > 10
    # No TensorRT here: the exact command that finishes the engine on the target is printed instead.
    assert "edgercnn build" in captured.err and "--calib-cache" in captured.err
    assert "int8-cpu" in captured.out and "calib-cache" in captured.out


def test_int8_without_calibration_images_is_refused_with_a_clear_message(tmp_path, capsys) -> None:
    status = export_main(["--card", CARD, "--precision", "int8", "--out", str(tmp_path)])
    assert status == 2
    assert "--precision int8 needs --calib DIR" in capsys.readouterr().err
