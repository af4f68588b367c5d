"""mypy over the TensorRT code against the ``tensorrt-stubs`` package (TensorRT 10.x's typed API).

TensorRT cannot run on the build host, so the type checker is what catches a misspelt method,
a wrong argument or a removed attribute. The stubs package ships ``.pyi`` files that mypy cannot
use as installed (no ``py.typed``; two syntax errors: a parameter named ``in`` and a non-default
parameter after defaults); the test copies them to a temporary folder with those two lines
repaired, points ``MYPYPATH`` at it, and asserts mypy reports nothing in our files.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import REPO_ROOT

REPO = REPO_ROOT
CHECKED = [
    "runtime/backends/tensorrt",  # the whole torch-free TensorRT package: plan, builder, backend, ...
    "runtime/commands/build.py",
    "export/roofline.py",
]
STUB_PACKAGES = ("tensorrt", "tensorrt_bindings")


def repair_stub(text: str) -> str:
    """Make the generated stubs parse: ``in`` is a keyword; defaults must come last."""
    text = re.sub(r"(?<=[(,] )in: ", "in_: ", text)
    text = re.sub(r"\(self, in: ", "(self, in_: ", text)
    text = text.replace("(self: IPluginV3, in: ", "(self: IPluginV3, in_: ")
    return re.sub(r", channel_axis: int\)", ", channel_axis: int = ...)", text)


def repaired_stubs(dest: Path) -> Path:
    for package in STUB_PACKAGES:
        spec = importlib.util.find_spec(package)
        locations = list(spec.submodule_search_locations or []) if spec else []
        source = next((Path(p) for p in locations if any(Path(p).glob("*.pyi"))), None)
        assert source is not None, (
            f"tensorrt-stubs is not installed: pip install --no-deps tensorrt-stubs ({package})"
        )
        (dest / package).mkdir(parents=True)
        for stub in source.glob("*.pyi"):
            (dest / package / stub.name).write_text(repair_stub(stub.read_text()))
    return dest


def test_repair_stub_fixes_exactly_the_two_syntax_errors() -> None:
    broken = "def f(self, in: list[int], out: list[int]) -> int: ...\n"
    broken += "def g(self, input: int, shift: int = None, channel_axis: int) -> int: ...\n"
    compile(repair_stub(broken), "<stub>", "exec")
    with pytest.raises(SyntaxError):
        compile(broken, "<stub>", "exec")


def test_tensorrt_code_typechecks_against_tensorrt_stubs(tmp_path: Path) -> None:
    stubs = repaired_stubs(tmp_path / "stubs")
    config = tmp_path / "mypy.ini"
    config.write_text(
        "[mypy]\npython_version = 3.11\nignore_missing_imports = True\nwarn_unused_ignores = True\n"
        "follow_imports = silent\n"
        "check_untyped_defs = True\ndisallow_untyped_defs = True\n"
        "[mypy-tensorrt.*]\nignore_errors = True\n[mypy-tensorrt_bindings.*]\nignore_errors = True\n"
    )
    present = [f for f in CHECKED if (REPO / f).exists()]
    assert present == CHECKED, f"moved without updating this test: {sorted(set(CHECKED) - set(present))}"
    env = dict(os.environ, MYPYPATH=str(stubs))

    def mypy(*paths: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "mypy", "--config-file", str(config)]
        command += ["--cache-dir", str(tmp_path / "cache"), *paths]
        return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)

    result = mypy(*present)
    assert result.returncode == 0, result.stdout + result.stderr
    # the stubs were really used: a deliberate misuse of the TensorRT API must be caught
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import tensorrt as trt\n\ndef f(e: trt.ICudaEngine) -> None:\n    e.get_tensor_nam(0)\n"
    )
    bad = mypy(str(probe))
    assert bad.returncode != 0 and "get_tensor_nam" in bad.stdout, bad.stdout
