"""``edgercnn quantize`` end to end on a tiny model: outputs, AP report, mixed-precision search, errors."""

from __future__ import annotations

import json

import pytest
from edgercnn.export.quantize.measure import open_session, run_outputs
from edgercnn.export.quantize.pipeline import QuantizeOptions, quantize_model
from edgercnn.runtime.calibration import iter_calibration_batches
from edgercnn.runtime.config import ModelConfig
from edgercnn.runtime.evaluate import evaluate_model

from tests.builders.onnx_detector import tiny_detector, write_images
from tests.cli import verb

main = verb("quantize")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Tiny model, a calibration set and an evaluation set whose objects are the FP32 model's boxes."""
    root = tmp_path_factory.mktemp("qcli")
    model = tiny_detector(root / "tiny.onnx")
    write_images(root / "calib", 6, seed=11)
    paths = write_images(root / "eval", 4, seed=12)
    config = ModelConfig.from_model_file(model)
    session = open_session(model)
    images, annotations = [], []
    for image_id, (path, batch) in enumerate(
        zip(paths, iter_calibration_batches(root / "eval", config), strict=True), 1
    ):
        out = run_outputs(session, {"images": batch})
        images.append({"id": image_id, "file_name": path.name, "height": 64, "width": 64})
        for x1, y1, x2, y2 in out["boxes"][0, : int(out["num_detections"][0])][:6].tolist():
            w, h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
            annotations.append(
                {"id": len(annotations) + 1, "image_id": image_id, "category_id": 1, "bbox": [x1, y1, w, h],
                 "area": w * h, "iscrowd": 0}
            )  # fmt: skip
    ann = root / "ann.json"
    ann.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "thing"}]})
    )
    return root, model, ann


def test_cli_writes_models_cache_and_report(setup, capsys):
    root, model, ann = setup
    args = ["--onnx", str(model), "--calib", str(root / "calib"), "--out", str(root / "cli"),
            "--method", "minmax", "--eval-images", str(root / "eval"), "--eval-ann", str(ann),
            "--max-ap-drop", "100", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    out = root / "cli"
    for name in ("tiny.int8.cpu.onnx", "tiny.int8.trt.onnx", "tiny.calib.cache", "tiny.int8.report.md"):
        assert (out / name).is_file()
    report = json.loads((out / "tiny.int8.report.json").read_text())
    assert report["fp32"]["ap"]["bbox"] > 50  # the objects are the model's own boxes
    for variant in report["variants"].values():
        assert variant["within_budget"] is True and variant["search"] == []
        assert variant["ap"]["bbox"] == pytest.approx(
            evaluate_model(variant["path"], root / "eval", ann, progress=False).ap["bbox"]
        )
    assert "bbox AP" in capsys.readouterr().out


def test_mixed_precision_search_keeps_ranked_layers_float_and_reports_them(setup, tmp_path):
    root, model, ann = setup
    options = QuantizeOptions(
        method="entropy", variants=("tensorrt",), max_ap_drop=0.0, eval_images=root / "eval", eval_ann=ann,
        bench_runs=1, progress=False, sensitivity_images=2,
    )  # fmt: skip
    report = quantize_model(model, root / "calib", tmp_path, options)
    result = report.variants["tensorrt"]
    assert result.search, "a zero budget on a random model must trigger the search"
    counts = [step["kept_float"] for step in result.search]
    assert counts == sorted(set(counts)) and counts[0] == 1
    kept = [item["node"] for item in result.kept_float]
    assert len(kept) == counts[-1] <= 5 and all(
        "sensitivity rank" in item["why"] for item in result.kept_float
    )
    assert set(kept) <= {"stem", "block_a", "block_b", "down", "lateral", "head"}
    assert result.quantized_layers == 6 - len(kept)
    measured = evaluate_model(result.path, root / "eval", ann, progress=False).ap
    assert measured["bbox"] == pytest.approx(result.ap["bbox"])
    assert result.within_budget == bool(report.fp32_ap["bbox"] - measured["bbox"] <= 1e-9)
    assert "sensitivity rank 1" in (tmp_path / "tiny.int8.report.md").read_text()


def test_bad_arguments_exit_2_with_one_line(setup, tmp_path, capsys):
    root, model, ann = setup
    assert main(["--onnx", str(tmp_path / "none.onnx"), "--calib", str(root / "calib")]) == 2
    assert "none.onnx" in capsys.readouterr().err
    assert main(["--onnx", str(model), "--calib", str(tmp_path / "nocalib")]) == 2
    assert "nocalib" in capsys.readouterr().err
    assert main(["--onnx", str(model), "--calib", str(root / "calib"), "--variant", "gpu"]) == 2
    assert "gpu" in capsys.readouterr().err
    assert main(["--onnx", str(model), "--calib", str(root / "calib"), "--eval-ann", str(ann)]) == 2
    assert "go together" in capsys.readouterr().err
