"""``edgercnn train`` end to end on a tiny generated set: checkpoint, weights and card."""

from __future__ import annotations

import json

import torch
from edgercnn.export.refmodels.architectures import build_from_card, load_card
from edgercnn.export.refmodels.synthdata.dataset import generate_dataset
from edgercnn.runtime.files import sha256_file

from tests.cli import verb

train_main = verb("train")


def test_training_writes_loadable_weights_and_a_complete_card(tmp_path):
    data = tmp_path / "data"
    generate_dataset(data, {"train": 4, "val": 2}, seed=5, width=384, height=288, progress=False)
    out = tmp_path / "models"
    args = ["--arch", "ref_fasterrcnn", "--data", str(data), "--data-seed", "5", "--out", str(out),
            "--work", str(tmp_path / "work"), "--iters", "2", "--batch-size", "2", "--warmup", "1",
            "--checkpoint-every", "1", "--threads", "1", "--subset-images", "2", "--no-progress"]  # fmt: skip
    assert train_main(args) == 0
    card = load_card(out / "ref_fasterrcnn.json")
    assert card["weights_sha256"] == sha256_file(out / "ref_fasterrcnn.pth")
    assert card["training"]["iters"] == 2 and card["training"]["seed"] == 0
    assert card["class_names"] == ["__background__", "person", "car", "plate"]
    assert set(card["val_ap"]) == {"bbox"} and 0.0 <= card["val_ap"]["bbox"]["AP"] <= 1.0
    assert card["subset"]["images"] == 2
    model = build_from_card(card)
    state = torch.load(out / "ref_fasterrcnn.pth", weights_only=True)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    ckpt = torch.load(tmp_path / "work" / "ref_fasterrcnn.ckpt.pt", weights_only=True)
    assert ckpt["step"] == 2
    json.dumps(card)  # the card is plain JSON all the way down


def test_training_reports_a_missing_data_set(tmp_path, capsys):
    code = train_main(["--arch", "ref_maskrcnn", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path)])
    assert code == 2  # a usage error, refused by the parser before any work (it was 1)
    err = capsys.readouterr().err
    assert "nowhere" in err and "edgercnn synth" in err
