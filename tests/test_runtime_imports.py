"""The runtime stays torch-free: importing it and running a model pulls in no torch, torchvision or export."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO_ROOT
from tests.fixtures_runtime import make_tiny_onnx, tiny_config, tiny_outputs

SCRIPT = """
import pkgutil, importlib, sys
import numpy as np
import runtime
for info in pkgutil.walk_packages(runtime.__path__, "runtime."):
    if info.name != "runtime.__main__":
        importlib.import_module(info.name)
from runtime.detector import Detector
det = Detector.open(sys.argv[1])
out = det.detect([np.zeros((120, 160, 3), np.uint8)])
assert len(out) == 1
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision", "export"))
print("BAD:" + ",".join(bad))
"""


def test_runtime_import_and_inference_load_no_torch_or_export(tmp_path):
    raw = tiny_config()
    model = make_tiny_onnx(tmp_path / "m.onnx", raw, tiny_outputs(raw, 2))
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(model)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "BAD:", result.stdout
