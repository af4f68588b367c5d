"""``edgercnn eval``: AP through the runtime equals pycocotools on the raw graph outputs."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from edgercnn.export.quantize.measure import open_session, run_outputs
from edgercnn.runtime.calibration import iter_calibration_batches
from edgercnn.runtime.config import ModelConfig
from edgercnn.runtime.evaluate import EvaluateError, evaluate_model
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from tests.builders.onnx_detector import tiny_detector, write_images
from tests.cli import verb

main = verb("eval")

IMAGES = 5


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Tiny model + images + a COCO file whose objects are some of the model's boxes, moved a little."""
    root = tmp_path_factory.mktemp("eval")
    model = tiny_detector(root / "tiny.onnx")
    paths = write_images(root / "images", IMAGES, seed=2)
    config = ModelConfig.from_model_file(model)
    session = open_session(model)
    rng = np.random.default_rng(0)
    images, annotations, raw = [], [], []
    for image_id, (path, batch) in enumerate(
        zip(paths, iter_calibration_batches(root / "images", config), strict=True), 1
    ):
        out = run_outputs(session, {"images": batch})
        raw.append(out)
        images.append({"id": image_id, "file_name": path.name, "height": 64, "width": 64})
        for box in out["boxes"][0, : int(out["num_detections"][0])][::3]:
            x1, y1, x2, y2 = (box + rng.normal(0, 1.5, 4)).tolist()
            w, h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
            annotations.append(
                {"id": len(annotations) + 1, "image_id": image_id, "category_id": 7, "bbox": [x1, y1, w, h],
                 "area": w * h, "iscrowd": 0}
            )  # fmt: skip
    ann = root / "ann.json"
    ann.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": [{"id": 7, "name": "thing"}]})
    )
    return root, model, ann, raw


def _reference_ap(ann, raw, limit=None):
    """pycocotools straight on the graph outputs (64x64 graph input = image size: no rescaling)."""
    results = []
    for image_id, out in enumerate(raw[:limit], 1):
        n = int(out["num_detections"][0])
        for (x1, y1, x2, y2), score in zip(
            out["boxes"][0, :n].tolist(), out["scores"][0, :n].tolist(), strict=True
        ):
            results.append(
                {"image_id": image_id, "category_id": 7, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": score}
            )
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(ann))
        evaluator = COCOeval(coco, coco.loadRes(results), "bbox")
        evaluator.params.imgIds = list(range(1, (limit or len(raw)) + 1))
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return 100 * evaluator.stats[0]


def test_box_ap_matches_pycocotools_on_raw_outputs(dataset):
    root, model, ann, raw = dataset
    result = evaluate_model(model, root / "images", ann, progress=False)
    reference = _reference_ap(ann, raw)
    assert 0 < reference < 100
    assert result.images == IMAGES and set(result.ap) == {"bbox"}
    assert result.ap["bbox"] == pytest.approx(reference, abs=1e-6)


def test_limit_evaluates_the_first_images_only(dataset):
    root, model, ann, raw = dataset
    result = evaluate_model(model, root / "images", ann, limit=2, progress=False)
    assert result.images == 2
    assert result.ap["bbox"] == pytest.approx(_reference_ap(ann, raw, limit=2), abs=1e-6)


def test_cli_json_output(dataset, capsys):
    root, model, ann, _ = dataset
    assert (
        main([str(model), "--images", str(root / "images"), "--ann", str(ann), "--json", "--no-progress"])
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["images"] == IMAGES and data["ap"]["bbox"] == data["stats"]["bbox"]["AP"]


def test_bad_inputs_name_the_file(dataset, tmp_path, capsys):
    root, model, ann, _ = dataset
    assert main([str(model), "--images", str(root / "images"), "--ann", str(tmp_path / "none.json")]) == 2
    assert "none.json" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(EvaluateError, match=r"bad\.json"):
        evaluate_model(model, root / "images", tmp_path / "bad.json", progress=False)
    other = json.loads(ann.read_text())
    other["categories"] = [{"id": 3, "name": "zebra"}]
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(EvaluateError, match="no category matches"):
        evaluate_model(model, root / "images", tmp_path / "other.json", progress=False)
    assert main([str(tmp_path / "missing.onnx"), "--images", str(root / "images"), "--ann", str(ann)]) == 2
    assert "missing.onnx" in capsys.readouterr().err


def test_classes_the_model_does_not_predict_are_not_scored(dataset, tmp_path):
    root, model, ann, raw = dataset
    data = json.loads(ann.read_text())
    data["categories"].append({"id": 9, "name": "car"})
    box = {"image_id": 1, "category_id": 9, "bbox": [1, 1, 10, 10], "area": 100, "iscrowd": 0}
    extra = [{"id": 1000 + i, **box} for i in range(3)]
    data["annotations"] += extra
    (tmp_path / "cars.json").write_text(json.dumps(data))
    result = evaluate_model(model, root / "images", tmp_path / "cars.json", progress=False)
    assert result.ap["bbox"] == pytest.approx(_reference_ap(ann, raw), abs=1e-6)
