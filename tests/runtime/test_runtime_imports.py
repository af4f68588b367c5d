"""The runtime stays torch-free and self-contained: importing it and running a model pulls in no torch,
torchvision, onnx or exporter, and the ``runtime/`` folder copied alone onto a camera still runs."""

from __future__ import annotations

import shutil
import subprocess
import sys

from tests.builders.fixed_onnx import make_tiny_onnx, tiny_config, tiny_outputs
from tests.paths import REPO_ROOT

IMPORT_ALL = """
import pkgutil, importlib, sys
import numpy as np
import edgercnn.runtime as runtime
for info in pkgutil.walk_packages(runtime.__path__, "edgercnn.runtime."):
    if info.name != "edgercnn.runtime.__main__":
        importlib.import_module(info.name)
from edgercnn.runtime.detector import Detector
det = Detector.open(sys.argv[1])
out = det.detect([np.zeros((120, 160, 3), np.uint8)])
assert len(out) == 1
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision", "onnx")
             or m.startswith("edgercnn.export"))
print("BAD:" + ",".join(bad))
"""

# Refuse the installed package and torch outright: the copied folder must need neither.
BLOCK_AND_RUN = """
import importlib.abc, runpy, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("edgercnn", "torch", "torchvision", "onnx"):
            raise ImportError(f"the copied runtime imported {name}")
        return None
sys.meta_path.insert(0, Refuse())
sys.argv = ["runtime", *sys.argv[1:]]
runpy.run_module("runtime", run_name="__main__", alter_sys=True)
"""


def test_runtime_import_and_inference_load_no_torch_onnx_or_exporter(tmp_path):
    raw = tiny_config()
    model = make_tiny_onnx(tmp_path / "m.onnx", raw, tiny_outputs(raw, 2))
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, str(model)], cwd=tmp_path, capture_output=True, text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "BAD:", result.stdout


def test_runtime_folder_copied_alone_runs_a_model(tmp_path):
    camera = tmp_path / "camera"
    shutil.copytree(REPO_ROOT / "runtime", camera / "runtime", ignore=shutil.ignore_patterns("__pycache__"))
    raw = tiny_config()
    model = make_tiny_onnx(tmp_path / "m.onnx", raw, tiny_outputs(raw, 3))
    frame = tmp_path / "frame.png"
    import cv2
    import numpy as np

    cv2.imwrite(str(frame), np.full((96, 128, 3), 90, np.uint8))
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_AND_RUN, "run", "--model", str(model), "--source", str(frame),
         "--out", str(out)],
        cwd=camera, capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = (out / "detections.jsonl").read_text().splitlines()
    assert len(lines) == 1 and '"detections"' in lines[0], lines
