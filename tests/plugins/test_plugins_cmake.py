"""The CMake project builds the CPU library and (with nvcc) the CUDA kernel library, reports the
TensorRT wrappers as skipped where TensorRT is absent, and its CPU library computes what torchvision does."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from edgercnn.runtime.plugin_ops import CpuKernels
from torchvision.ops import nms

from tests.paths import REPO_ROOT

PLUGINS = REPO_ROOT / "plugins"
NVCC = shutil.which("nvcc")
CMAKE = shutil.which("cmake")


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert result.returncode == 0, (
        f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


@pytest.fixture(scope="module")
def cmake_build(tmp_path_factory) -> tuple[Path, str]:
    if CMAKE is None:
        pytest.skip("cmake not on PATH")
    build = tmp_path_factory.mktemp("plugins-build")
    args = [CMAKE, "-S", str(PLUGINS), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release"]
    if NVCC is None:
        args.append("-DEDGERCNN_CPU_ONLY=ON")
    else:
        args += ["-DCMAKE_CUDA_ARCHITECTURES=87", f"-DCMAKE_CUDA_COMPILER={NVCC}"]
    env_root = os.environ.get("TENSORRT_ROOT")
    if env_root:
        args.append(f"-DTENSORRT_ROOT={env_root}")
    configure = run(args)
    run([CMAKE, "--build", str(build), "-j", "2"])
    return build, configure.stdout + configure.stderr


@pytest.mark.nvcc
def test_cmake_builds_cpu_and_cuda_kernel_libraries(cmake_build):
    build, log = cmake_build
    assert (build / "libedgercnn_cpu.so").is_file()
    if NVCC is None:
        assert "SKIPPED" in log
        pytest.skip("nvcc not on PATH: only the CPU library was configured (EDGERCNN_CPU_ONLY)")
    kernels = build / "libedgercnn_kernels.so"
    assert kernels.is_file()
    lib = ctypes.CDLL(str(kernels))  # loads without a GPU: cudart resolves the driver lazily
    assert lib.edgercnn_cuda_api_version() == 1
    for symbol in (
        "edgercnn_cuda_multi_level_roi_align",
        "edgercnn_cuda_batched_nms",
        "edgercnn_cuda_batched_nms_workspace_size",
    ):
        assert hasattr(lib, symbol)
    if (build / "libedgercnn_plugins.so").is_file():
        assert "plugin library edgercnn_plugins will be built" in log
    else:
        assert "TensorRT plugin wrappers (edgercnn_plugins) are SKIPPED" in " ".join(log.split())


def test_cmake_built_cpu_library_matches_torchvision_nms(cmake_build):
    build, _ = cmake_build
    kernels = CpuKernels(build / "libedgercnn_cpu.so")
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(500, 2, generator=g) * 300
    boxes = torch.cat([xy, xy + torch.rand(500, 2, generator=g) * 80 + 1], dim=1)
    scores = torch.rand(500, generator=g)
    expected = nms(boxes, scores, 0.5).numpy()
    keep, count = kernels.batched_nms(
        boxes[None].numpy(), scores[None].numpy(), np.zeros((1, 500)), 0.5, float("-inf"), 500
    )
    np.testing.assert_array_equal(keep[0, : count[0]], expected)


def find_tensorrt() -> tuple[Path, Path] | None:
    """(include dir, libnvinfer) of an installed TensorRT, as CMakeLists.txt searches them."""
    root = os.environ.get("TENSORRT_ROOT")
    arch = f"{os.uname().machine}-linux-gnu"
    includes = [Path(root) / "include"] if root else []
    includes += [Path(f"/usr/include/{arch}"), Path("/usr/include")]
    libs = [Path(root) / "lib"] if root else []
    libs += [Path(f"/usr/lib/{arch}")]
    include = next((d for d in includes if (d / "NvInferRuntime.h").is_file()), None)
    lib = next((d / "libnvinfer.so" for d in libs if (d / "libnvinfer.so").exists()), None)
    return (include, lib) if include and lib else None


def test_tensorrt_plugin_wrappers_pass_host_checks(cmake_build, tmp_path):
    """Creators, attribute parsing, formats, types and serialization of the IPluginV3 wrappers."""
    tensorrt = find_tensorrt()
    if tensorrt is None or NVCC is None:
        pytest.skip("TensorRT headers/libnvinfer or nvcc not found (set TENSORRT_ROOT): wrappers not checked")
    include, nvinfer = tensorrt
    build, _ = cmake_build
    cuda_roots = [
        os.environ.get("CUDA_HOME"),
        os.environ.get("CUDA_PATH"),
        Path(NVCC).resolve().parents[1],
        "/usr/local/cuda",
    ]
    cuda = next(Path(r) for r in cuda_roots if r and (Path(r) / "include" / "cuda_runtime_api.h").is_file())
    cudart = cuda / "lib64"
    exe = tmp_path / "trt_wrapper_check"
    run(
        [
            "g++",
            "-std=c++17",
            "-O1",
            "-Wno-deprecated-declarations",
            "-isystem",
            str(include),
            f"-I{cudart.parent / 'include'}",
            f"-I{PLUGINS / 'src' / 'common'}",
            str(PLUGINS / "tests" / "trt_wrapper_check.cpp"),
            *map(str, sorted((PLUGINS / "src" / "trt").glob("*.cpp"))),
            f"-L{build}",
            "-ledgercnn_kernels",
            str(nvinfer),
            f"-L{cudart}",
            "-lcudart",
            f"-Wl,-rpath,{build}:{nvinfer.parent}:{cudart}",
            "-o",
            str(exe),
        ]
    )
    result = run([str(exe)])
    assert "all plugin wrapper checks passed" in result.stdout
