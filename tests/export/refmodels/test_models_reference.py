"""Bundled reference models: cards, safe loading, and the AP they were shipped with.

The AP check re-generates the card's validation subset from its seed, runs eager torchvision
and scores it with pycocotools, so a change to the generator, the architecture or the weights
that silently degrades the models fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from edgercnn.export.coco_eval import evaluate_model
from edgercnn.export.refmodels.architectures import (
    ARCHITECTURES,
    ModelCardError,
    UnknownArchitectureError,
    build_from_card,
    build_model,
    load_card,
    model_kind,
)
from edgercnn.export.refmodels.training import val_subset
from edgercnn.runtime.files import sha256_file

from tests.paths import REPO_ROOT

REPO = REPO_ROOT
MODELS = REPO / "models"
REFERENCE_NAMES = ["ref_maskrcnn", "ref_keypointrcnn", "ref_fasterrcnn"]
AP_TOLERANCE = 0.02


@pytest.fixture(scope="module")
def subsets() -> dict[tuple[int, int], tuple[dict, list]]:
    """Validation subsets by (seed, size), generated once for all models."""
    return {}


def _subset(subsets: dict, seed: int, count: int) -> tuple[dict, list]:
    if (seed, count) not in subsets:
        subsets[(seed, count)] = val_subset(seed, count)
    return subsets[(seed, count)]


@pytest.mark.parametrize("name", REFERENCE_NAMES)
def test_card_matches_its_weights_file(name):
    card = load_card(MODELS / f"{name}.json")
    weights = Path(card["weights_path"])
    assert card["architecture"] == name and card["kind"] == model_kind(name)
    assert sha256_file(weights) == card["weights_sha256"]
    assert weights.stat().st_size < 20 * 1024 * 1024
    assert card["class_names"][0] == "__background__" and len(card["class_names"]) == card["num_classes"]
    assert card["input"]["height"] == 288 and card["input"]["width"] == 384
    assert card["training"]["wall_seconds"] > 0 and card["training"]["command"].startswith("edgercnn train")


@pytest.mark.parametrize("name", REFERENCE_NAMES)
def test_weights_load_with_weights_only_into_the_card_architecture(name):
    card = load_card(MODELS / f"{name}.json")
    state = torch.load(card["weights_path"], map_location="cpu", weights_only=True)
    model = build_model(card["architecture"], card["num_classes"], **card["constructor_kwargs"])
    missing, unexpected = model.load_state_dict(state, strict=True)
    assert not missing and not unexpected


@pytest.mark.parametrize("name", REFERENCE_NAMES)
def test_eager_model_reaches_the_card_subset_ap(name, subsets):
    card = load_card(MODELS / f"{name}.json")
    torch.manual_seed(0)
    model = build_from_card(card)
    gt, images = _subset(subsets, card["subset"]["seed"], card["subset"]["images"])
    measured = evaluate_model(model, card["kind"], gt, images)
    recorded = card["subset"]["ap"]
    assert set(measured) == set(recorded)
    for iou_type, ap in recorded.items():
        assert measured[iou_type]["AP"] == pytest.approx(ap["AP"], abs=AP_TOLERANCE), iou_type


@pytest.mark.parametrize("name", ["ref_fasterrcnn", "ref_maskrcnn", "ref_keypointrcnn"])
def test_reference_architectures_run_on_the_synthetic_image_size(name):
    torch.manual_seed(0)
    model = build_model(name).eval()
    with torch.no_grad():
        (out,) = model([torch.rand(3, 288, 384)])
    assert {"boxes", "scores", "labels"} <= set(out)
    if model_kind(name) == "maskrcnn":
        assert out["masks"].shape[1:] == (1, 288, 384)
    if model_kind(name) == "keypointrcnn":
        assert out["keypoints"].shape[1:] == (17, 3)
    assert model.transform.min_size == (288,) and model.transform.max_size == 384


def test_overrides_reach_the_torchvision_constructor():
    model = build_model("ref_fasterrcnn", box_score_thresh=0.3, rpn_post_nms_top_n_test=123)
    assert model.roi_heads.score_thresh == 0.3
    assert model.rpn._post_nms_top_n["testing"] == 123


def test_torchvision_builder_builds_without_downloading():
    model = build_model("fasterrcnn_mobilenet_v3_large_320_fpn", num_classes=5)
    assert model.roi_heads.box_predictor.cls_score.out_features == 5


def test_every_architecture_has_a_kind():
    kinds = {name: model_kind(name) for name in ARCHITECTURES}
    assert set(kinds.values()) == {"fasterrcnn", "maskrcnn", "keypointrcnn"}
    assert len(kinds) == 10


def test_unknown_architecture_lists_the_valid_names():
    with pytest.raises(UnknownArchitectureError, match="ref_maskrcnn") as info:
        build_model("maskrcnn_resnet18")
    assert "maskrcnn_resnet18" in str(info.value)


def test_bad_cards_are_reported_with_their_path(tmp_path):
    with pytest.raises(ModelCardError, match="not found"):
        load_card(tmp_path / "absent.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ModelCardError, match=r"broken\.json"):
        load_card(broken)
    card = json.loads((MODELS / "ref_maskrcnn.json").read_text())
    card["architecture"] = "nope"
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(card))
    with pytest.raises(ModelCardError, match="unknown architecture 'nope'"):
        load_card(wrong)
    del card["weights"]
    wrong.write_text(json.dumps(card))
    with pytest.raises(ModelCardError, match="lacks weights"):
        load_card(wrong)
