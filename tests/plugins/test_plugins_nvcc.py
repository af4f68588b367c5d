"""The CUDA kernels compile with nvcc for Orin (sm_87) and Hopper (sm_90), warnings as errors."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.paths import REPO_ROOT

PLUGINS = REPO_ROOT / "plugins"
CUDA_SOURCES = sorted((PLUGINS / "src" / "cuda").glob("*.cu"))
NVCC = shutil.which("nvcc")
needs_nvcc = pytest.mark.skipif(
    NVCC is None, reason="nvcc (CUDA toolkit) not on PATH: CUDA kernels not compiled"
)


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert result.returncode == 0, (
        f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


@pytest.mark.nvcc
@needs_nvcc
@pytest.mark.parametrize("source", CUDA_SOURCES, ids=[p.name for p in CUDA_SOURCES])
def test_cuda_kernels_compile_with_nvcc_for_orin_and_hopper(tmp_path, source):
    obj = tmp_path / f"{source.stem}.o"
    run(
        [
            NVCC,
            "-std=c++17",
            "-O3",
            "-c",
            "-Werror",
            "all-warnings",
            "-gencode",
            "arch=compute_87,code=sm_87",
            "-gencode",
            "arch=compute_90,code=sm_90",
            "-o",
            str(obj),
            str(source),
        ]
    )
    assert obj.stat().st_size > 0
