"""``pip wheel .`` gives one top-level package, ``edgercnn``, with the plugin sources and bundled assets."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.paths import REPO_ROOT


def _tracked_copy(dest: Path) -> Path:
    """The committed tree (plus uncommitted edits), so the build never writes build/ into the checkout."""
    listed = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "ls-files", "--cached", "--others", "--exclude-standard"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    for name in listed:
        source = REPO_ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = _tracked_copy(tmp_path_factory.mktemp("source"))
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
         "-q", "-w", str(out)],
        capture_output=True, text=True, timeout=600, cwd=source,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = out.glob("edgercnn-*.whl")
    return built


@pytest.fixture(scope="module")
def wheel_names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_wheel_installs_only_the_edgercnn_package(wheel_names: list[str]) -> None:
    top = {name.split("/")[0] for name in wheel_names if ".dist-info/" not in name}
    assert top == {"edgercnn"}


LAYERS_AND_PLUGIN_SOURCES = (
    "edgercnn/cli/__init__.py",
    "edgercnn/export/deploy/model.py",
    "edgercnn/runtime/detector.py",
    "edgercnn/runtime/backends/tensorrt/builder.py",
    "edgercnn/plugins/CMakeLists.txt",
    "edgercnn/plugins/src/cpu/nms_cpu.cpp",
    "edgercnn/plugins/src/cuda/nms_kernel.cu",
)
DEMO_ASSETS = (
    "edgercnn/assets/models/ref_maskrcnn.json",
    "edgercnn/assets/models/ref_maskrcnn.pth",
    "edgercnn/assets/samples/synth_street.mp4",
    "edgercnn/assets/calib_data/synth/manifest.json",
)


@pytest.mark.parametrize("required", LAYERS_AND_PLUGIN_SOURCES + DEMO_ASSETS)
def test_wheel_carries_every_layer_the_plugin_sources_and_the_demo_assets(
    wheel_names: list[str], required: str
) -> None:
    assert required in set(wheel_names)


def test_the_installed_package_finds_its_assets_without_the_checkout(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    probe = (
        "import edgercnn\n"
        "from edgercnn.export.refmodels.assets import asset_path\n"
        "print(edgercnn.__file__)\n"
        "for folder, name in (('models', 'ref_maskrcnn.json'), ('samples', 'synth_street.mp4'),"
        " ('calib_data', 'synth')):\n"
        "    print(asset_path(folder, name))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(site))
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [Path(line) for line in done.stdout.splitlines()]
    assert all(line.is_relative_to(site) for line in lines), lines
    assert all(line.exists() for line in lines[1:]), lines
