"""The CMake project builds the CPU library and (with nvcc) the CUDA kernel library, reports the
TensorRT wrappers as skipped where TensorRT is absent, and its CPU library computes what torchvision does."""

from __future__ import annotations

import ctypes
import os
import re
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
        args += ["-DEDGERCNN_CUDA_ARCHITECTURES=87", f"-DCMAKE_CUDA_COMPILER={NVCC}"]
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
    assert lib.edgercnn_cuda_api_version() == 2
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


def _archs(log: str) -> str:
    found = re.findall(r"edgercnn_kernels will be built \(archs: ([^)]*)\)", log)
    assert len(found) == 1, log[-2000:]
    return found[0]


@pytest.mark.nvcc
def test_reconfiguring_keeps_the_projects_cuda_architectures(tmp_path):
    """CMake caches the compiler's default architecture at the first configure (75 with CUDA 13,
    sm_52 with JetPack's CUDA 12); a re-configure must not take it for the user's choice."""
    if CMAKE is None or NVCC is None:
        pytest.skip("cmake or nvcc not on PATH")
    build = tmp_path / "b"

    def configure(*extra: str) -> str:
        done = run([CMAKE, "-S", str(PLUGINS), "-B", str(build), f"-DCMAKE_CUDA_COMPILER={NVCC}", *extra])
        return _archs(done.stdout + done.stderr)

    default = configure()
    assert "87" in default.split(";") and "75" in default.split(";")
    assert configure() == default  # used to print 'archs: 75'
    assert configure("-DCMAKE_CUDA_ARCHITECTURES=87") == "87"  # the user's -D still counts
    assert configure() == "87"
    assert configure("-DEDGERCNN_CUDA_ARCHITECTURES=90") == "90"
    assert configure("-DEDGERCNN_CUDA_ARCHITECTURES=") == default
    refused = subprocess.run(
        [CMAKE, "-S", str(PLUGINS), "-B", str(build), "-DEDGERCNN_CUDA_ARCHITECTURES=52"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode != 0
    assert "below sm_70" in " ".join(refused.stderr.split())


@pytest.mark.nvcc
def test_cuda_library_links_one_shared_cuda_runtime(cmake_build):
    """Static cudart (CMake's default for CUDA targets) plus CUDA::cudart gave two runtimes."""
    build, _ = cmake_build
    kernels = build / "libedgercnn_kernels.so"
    if NVCC is None or not kernels.is_file():
        pytest.skip("nvcc not on PATH: no CUDA library built")
    needed = run(["readelf", "-d", str(kernels)]).stdout
    assert re.search(r"NEEDED.*\[libcudart\.so\.\d+\]", needed), needed
    symbols = run(["nm", str(kernels)]).stdout.splitlines()
    defined_runtime = [
        line for line in symbols if re.match(r"^[0-9a-f]+ [tTwW] _*cuda[A-Z]\w*$", line.strip())
    ]
    assert defined_runtime == [], defined_runtime[:5]  # every CUDA runtime call is imported
    assert any(" U cudaGetLastError" in line for line in symbols)


@pytest.mark.nvcc
def test_nms_workspace_size_is_unknown_not_too_small_when_cub_cannot_size_its_sort(cmake_build):
    """cub's size query asks the device; its error used to be ignored, leaving a workspace with no
    room for the sort. Without a GPU the query fails: the size must be SIZE_MAX (unknown), and the
    kernel entry point must refuse rather than run."""
    build, _ = cmake_build
    kernels = build / "libedgercnn_kernels.so"
    if NVCC is None or not kernels.is_file():
        pytest.skip("nvcc not on PATH: no CUDA library built")
    lib = ctypes.CDLL(str(kernels))
    size = lib.edgercnn_cuda_batched_nms_workspace_size
    size.restype = ctypes.c_size_t
    size.argtypes = [ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_int32]
    size_max = 2 ** (8 * ctypes.sizeof(ctypes.c_size_t)) - 1
    assert size(-1, 100, -1, 0) == size_max  # invalid sizes: unknown as well
    if torch.cuda.is_available():
        assert 0 < size(2, 5000, -1, 0) < size_max
        return
    assert size(1, 100, -1, 0) == size_max
    nms = lib.edgercnn_cuda_batched_nms
    nms.restype = ctypes.c_int
    vp = ctypes.c_void_p
    i64 = ctypes.c_int64
    nms.argtypes = [
        ctypes.c_int32,
        ctypes.c_int32,
        vp,
        vp,
        vp,
        i64,
        i64,
        ctypes.c_double,
        ctypes.c_float,
        i64,
        i64,
        vp,
        vp,
        vp,
        ctypes.c_size_t,
        ctypes.c_int32,
        vp,
    ]
    status = nms(0, 0, None, None, None, 1, 100, 0.5, 0.0, 10, -1, None, None, None, 1 << 30, 0, None)
    assert status == -4


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
