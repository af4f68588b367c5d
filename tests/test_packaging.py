"""``pip wheel .`` gives one top-level package, ``edgercnn``, with the plugin sources and bundled assets."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from tests.paths import REPO_ROOT


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("wheel-build")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO_ROOT), "--no-deps", "--no-build-isolation",
         "-q", "-w", str(out)],
        capture_output=True, text=True, timeout=600, cwd=build,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = out.glob("edgercnn-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_wheel_installs_only_the_edgercnn_package(wheel_names: list[str]) -> None:
    top = {name.split("/")[0] for name in wheel_names if ".dist-info/" not in name}
    assert top == {"edgercnn"}
    (top_level,) = [n for n in wheel_names if n.endswith(".dist-info/top_level.txt")] or [None]
    assert top_level is None or top_level  # setuptools may omit it; the file list above is what counts


def test_wheel_carries_every_layer_and_the_plugin_sources(wheel_names: list[str]) -> None:
    names = set(wheel_names)
    for required in (
        "edgercnn/cli/__init__.py",
        "edgercnn/export/deploy/model.py",
        "edgercnn/runtime/detector.py",
        "edgercnn/runtime/backends/tensorrt/builder.py",
        "edgercnn/plugins/CMakeLists.txt",
        "edgercnn/plugins/src/cpu/nms_cpu.cpp",
        "edgercnn/plugins/src/cuda/nms_kernel.cu",
    ):
        assert required in names, required


def test_wheel_carries_the_demo_assets(wheel_names: list[str]) -> None:
    names = set(wheel_names)
    for required in (
        "edgercnn/assets/models/ref_maskrcnn.json",
        "edgercnn/assets/models/ref_maskrcnn.pth",
        "edgercnn/assets/samples/synth_street.mp4",
        "edgercnn/assets/calib_data/synth/manifest.json",
    ):
        assert required in names, required
