"""``edgercnn export`` / ``export.py``: files, summary, and one clear error line for bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from edgercnn.export import metadata
from edgercnn.export.refmodels import architectures
from edgercnn.runtime.files import sha256_file

from tests.builders.torch_models import tiny_model
from tests.cli import verb
from tests.paths import REPO_ROOT

main = verb("export")

TINY = "tiny_fasterrcnn_test"


@pytest.fixture
def tiny_arch(register_tiny_arch):
    return register_tiny_arch(TINY, "fasterrcnn", ["__background__", "person", "car", "plate"])


@pytest.fixture
def checkpoint(tmp_path, tiny_arch):
    path = tmp_path / "tiny.pth"
    torch.save(architectures.build_model(TINY).state_dict(), path)
    return path


def test_export_writes_onnx_with_metadata_and_prints_summary(tmp_path, checkpoint, capsys):
    out = tmp_path / "out"
    argv = ["--checkpoint", str(checkpoint), "--arch", TINY, "--source-size", "131x97", "--out", str(out)]
    assert main([*argv, "--batch", "2", "--no-simplify"]) == 0
    captured = capsys.readouterr()
    assert "model.onnx" in captured.out and "num_detections,boxes,scores,labels" in captured.out
    assert "[1/" in captured.err  # step lines
    config = metadata.read(out / "model.onnx")
    assert config["builder"] == TINY
    assert config["class_names"] == ["__background__", "person", "car", "plate"]
    assert (config["input"]["source_width"], config["input"]["source_height"]) == (131, 97)
    assert config["batch"] == 2
    assert config["source"]["checkpoint_sha256"] == sha256_file(checkpoint)


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # after the step lines
    assert last.startswith("edgercnn export: error:") and "Traceback" not in err
    return last


def test_unknown_architecture_lists_valid_names(tmp_path, capsys):
    err = _error(capsys, ["--arch", "resnet9000", "--random-weights", "--out", str(tmp_path)])
    assert "resnet9000" in err and "fasterrcnn_resnet50_fpn" in err and "ref_maskrcnn" in err


def test_checkpoint_of_another_architecture_names_file_and_first_mismatches(tmp_path, tiny_arch, capsys):
    path = tmp_path / "other.pth"
    torch.save(tiny_model("maskrcnn").state_dict(), path)
    err = _error(capsys, ["--arch", TINY, "--checkpoint", str(path), "--out", str(tmp_path)])
    assert str(path) in err and "unexpected keys" in err and "roi_heads.mask_head" in err


def test_checkpoint_with_other_class_count_suggests_num_classes(tmp_path, tiny_arch, capsys):
    path = tmp_path / "seven.pth"
    torch.save(tiny_model("fasterrcnn", num_classes=7).state_dict(), path)
    err = _error(capsys, ["--arch", TINY, "--checkpoint", str(path), "--out", str(tmp_path)])
    assert "shape mismatches" in err and "[7, 32]" in err and "--num-classes 7" in err


def test_pickled_full_model_is_refused_with_how_to_save_a_state_dict(tmp_path, tiny_arch, capsys):
    path = tmp_path / "full.pth"
    torch.save(tiny_model("fasterrcnn"), path)
    err = _error(capsys, ["--arch", TINY, "--checkpoint", str(path), "--out", str(tmp_path)])
    assert "weights_only=True" in err and "state_dict()" in err


def test_unsupported_source_size_says_why(tmp_path, tiny_arch, capsys):
    err = _error(
        capsys, ["--arch", TINY, "--random-weights", "--source-size", "20x10", "--out", str(tmp_path)]
    )
    assert "outside the supported range" in err
    err = _error(
        capsys, ["--arch", TINY, "--random-weights", "--source-size", "wide", "--out", str(tmp_path)]
    )
    assert "WIDTHxHEIGHT" in err


def test_class_names_must_match_class_count(tmp_path, tiny_arch, capsys):
    err = _error(
        capsys,
        ["--arch", TINY, "--random-weights", "--num-classes", "4", "--class-names", "bg,a", "--out", "x"],
    )
    assert "2 class names for 4 classes" in err


def test_export_py_at_the_top_level_is_the_same_command():
    result = subprocess.run(
        [sys.executable, "export.py", "--help"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0
    assert "--source-size" in result.stdout and "--flavour" in result.stdout
