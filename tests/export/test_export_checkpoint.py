"""Checkpoint loading: weights_only, wrappers and prefixes, and errors that say what to do."""

from __future__ import annotations

import pytest
import torch
from edgercnn.export.checkpoint import CheckpointError, load_into, read_state_dict

from tests.builders.torch_models import tiny_model


def test_state_dict_with_module_prefix_and_wrapper_loads(tmp_path):
    source = tiny_model("fasterrcnn", seed=3)
    wrapped = {"epoch": 3, "model": {f"module.{k}": v for k, v in source.state_dict().items()}}
    path = tmp_path / "ddp.pth"
    torch.save(wrapped, path)
    target = tiny_model("fasterrcnn", seed=4)
    load_into(target, path)
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def test_missing_file_is_named(tmp_path):
    with pytest.raises(CheckpointError, match=r"nothere\.pth: checkpoint file not found"):
        read_state_dict(tmp_path / "nothere.pth")


def test_garbage_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "noise.pth"
    path.write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match=r"noise\.pth: not a readable PyTorch checkpoint"):
        read_state_dict(path)


def test_pickled_model_cannot_load_with_weights_only(tmp_path):
    path = tmp_path / "whole.pth"
    torch.save(tiny_model("fasterrcnn"), path)
    with pytest.raises(
        CheckpointError, match=r"whole\.pth: holds a pickled torchvision\..*FasterRCNN object.*state_dict\(\)"
    ):
        read_state_dict(path)


def test_tensor_free_file_is_refused(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointError, match="contains a list, not a state_dict"):
        read_state_dict(path)


def test_mismatch_names_missing_and_unexpected_keys_first(tmp_path):
    path = tmp_path / "mask.pth"
    torch.save(tiny_model("maskrcnn").state_dict(), path)
    with pytest.raises(CheckpointError) as info:
        load_into(tiny_model("keypointrcnn"), path)
    message = str(info.value)
    assert "mask.pth" in message
    assert "missing keys: roi_heads.keypoint_head" in message
    assert "unexpected keys: roi_heads.mask_head" in message
