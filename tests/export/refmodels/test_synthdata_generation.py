"""The synthetic set: deterministic, valid COCO, masks that agree with boxes and keypoints."""

from __future__ import annotations

import hashlib
import json

import cv2
import numpy as np
import pytest
from edgercnn.export.refmodels.synthdata.coco import KEYPOINT_NAMES
from edgercnn.export.refmodels.synthdata.dataset import build_split, generate_dataset, render_split_image
from edgercnn.export.refmodels.synthdata.video import render_video_frames, write_video
from edgercnn.runtime.coco import coco_from_dict
from pycocotools import mask as mask_utils

from tests.cli import verb
from tests.paths import REPO_ROOT

synth_main = verb("synth")

REPO = REPO_ROOT
W, H = 384, 288


@pytest.fixture(scope="module")
def val_split() -> tuple[dict, list[np.ndarray], list[bytes]]:
    return build_split(seed=7, split="val", count=6, width=W, height=H)


def test_same_seed_gives_identical_images_and_annotations(val_split):
    coco, _, encoded = val_split
    again_coco, _, again_encoded = build_split(seed=7, split="val", count=6, width=W, height=H)
    assert encoded == again_encoded
    assert json.dumps(coco) == json.dumps(again_coco)


def test_other_seed_or_split_gives_other_images(val_split):
    _, images, _ = val_split
    other_seed, _ = render_split_image(8, "val", 0, W, H)
    other_split, _ = render_split_image(7, "train", 0, W, H)
    assert np.abs(other_seed.image.astype(int) - images[0]).mean() > 10
    assert np.abs(other_split.image.astype(int) - images[0]).mean() > 10


def test_coco_json_loads_in_pycocotools_with_all_categories(val_split):
    coco, _, _ = val_split
    api = coco_from_dict(coco)
    names = {c["name"] for c in api.loadCats(api.getCatIds())}
    assert names == {"person", "car", "plate"}
    person = api.loadCats(api.getCatIds(catNms=["person"]))[0]
    assert person["keypoints"] == KEYPOINT_NAMES and len(person["skeleton"]) == 19
    seen = {api.loadCats(a["category_id"])[0]["name"] for a in api.loadAnns(api.getAnnIds())}
    assert seen == {"person", "car", "plate"}, "six scenes should contain every category"


def test_masks_match_boxes_and_areas(val_split):
    coco, _, _ = val_split
    for ann in coco["annotations"]:
        mask = mask_utils.decode(ann["segmentation"]).astype(bool)
        ys, xs = np.nonzero(mask)
        x, y, w, h = ann["bbox"]
        assert (x, y) == (xs.min(), ys.min())
        assert (x + w, y + h) == (xs.max() + 1, ys.max() + 1)
        assert ann["area"] == mask.sum() == mask_utils.area(ann["segmentation"])


def test_visible_keypoints_lie_on_the_person_mask(val_split):
    coco, _, _ = val_split
    on_mask, visible, labelled = 0, 0, 0
    for ann in coco["annotations"]:
        if "keypoints" not in ann:
            continue
        kp = np.array(ann["keypoints"]).reshape(17, 3)
        assert ann["num_keypoints"] == int((kp[:, 2] > 0).sum())
        mask = mask_utils.decode(ann["segmentation"])
        grown = cv2.dilate(mask, np.ones((5, 5), np.uint8)).astype(bool)
        for x, y, v in kp:
            if v == 0:
                assert x == 0 and y == 0
                continue
            labelled += 1
            assert 0 <= x < W and 0 <= y < H
            if v == 2:
                visible += 1
                on_mask += bool(grown[int(y), int(x)])
    assert labelled > 17 and visible > 0.5 * labelled
    assert on_mask / visible > 0.97


def test_images_show_the_objects_they_annotate(val_split):
    """Object pixels differ from the plain background: a mask is not annotated on empty scenery."""
    coco, images, _ = val_split
    for ann in coco["annotations"]:
        image = images[ann["image_id"] - 1]
        mask = mask_utils.decode(ann["segmentation"]).astype(bool)
        inside = image[mask].astype(float).std()
        assert inside > 1.0  # not a flat region with a made-up label


def test_generate_dataset_writes_what_build_split_renders(tmp_path):
    stats = generate_dataset(
        tmp_path, {"train": 2, "val": 1, "calib": 1}, seed=3, width=W, height=H, progress=False
    )
    assert stats["splits"]["train"]["images"] == 2
    coco = json.loads((tmp_path / "annotations" / "train.json").read_text())
    _, _, encoded = build_split(3, "train", 2, W, H)
    for info, data in zip(coco["images"], encoded, strict=True):
        assert (tmp_path / "train" / info["file_name"]).read_bytes() == data


def test_cli_writes_a_data_set_and_rejects_bad_sizes(tmp_path, capsys):
    out = tmp_path / "d"
    args = ["--out", str(out), "--train", "1", "--val", "1", "--calib", "0", "--seed", "1", "--no-progress"]
    assert synth_main(args) == 0
    assert (out / "annotations" / "val.json").is_file()
    # a bad flag is one line and exit 2 from the dispatcher now, not argparse's SystemExit
    assert synth_main(["--out", str(out), "--size", "100x50"]) == 2
    assert "multiples of 32" in capsys.readouterr().err


def test_bundled_calibration_images_match_manifest_and_generator():
    root = REPO / "calib_data" / "synth"
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["split"] == "calib" and manifest["count"] == len(manifest["files"])
    total = 0
    for entry in manifest["files"]:
        data = (root / entry["file"]).read_bytes()
        total += len(data)
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    assert total < 5 * 1024 * 1024
    size = manifest["size"]
    for index in (0, len(manifest["files"]) - 1):
        scene, _ = render_split_image(manifest["seed"], "calib", index, size["width"], size["height"])
        on_disk = cv2.imread(str(root / manifest["files"][index]["file"]), cv2.IMREAD_COLOR)
        assert np.abs(scene.image.astype(int) - on_disk).mean() < 1.0


def test_video_frames_move_and_are_annotated(tmp_path):
    frames, coco = render_video_frames(seed=0, seconds=0.3, fps=10, width=W, height=H)
    assert len(frames) == 3 and len(coco["images"]) == 3
    assert np.abs(frames[0].astype(int) - frames[2]).mean() > 1.0
    people = [
        [a["bbox"] for a in coco["annotations"] if a["image_id"] == i and a["category_id"] == 1]
        for i in (1, 3)
    ]
    assert people[0] and people[0] != people[1]
    gt = write_video(tmp_path / "clip.mp4", seed=0, seconds=0.5, fps=10)
    cap = cv2.VideoCapture(str(tmp_path / "clip.mp4"))
    count = 0
    while cap.read()[0]:
        count += 1
    assert count == 5
    assert len(json.loads(gt.read_text())["images"]) == 5


def test_bundled_sample_video_has_ground_truth_for_every_frame():
    video = REPO / "samples" / "synth_street.mp4"
    gt = json.loads(video.with_suffix(".json").read_text())
    cap = cv2.VideoCapture(str(video))
    count = 0
    while cap.read()[0]:
        count += 1
    assert count == len(gt["images"]) and count >= 80
    assert video.stat().st_size < 3 * 1024 * 1024
