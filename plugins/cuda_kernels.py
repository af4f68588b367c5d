"""The CUDA kernels' C entry points (``plugins/src/common/edgercnn_cuda_api.h``) on torch CUDA tensors.

For tests and benchmarks on a GPU without TensorRT. The library is ``$EDGERCNN_PLUGIN_CUDA_LIB``, a
CMake build ``plugins/build*/libedgercnn_kernels.so``, or compiled here with ``nvcc`` into the cache
(``-arch=$EDGERCNN_CUDA_ARCH``, default ``native``). Build-host code: it imports torch.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from edgercnn.runtime.errors import EdgercnnError

SOURCE_DIR = Path(__file__).resolve().parent / "src"
LIB_NAME = "libedgercnn_kernels.so"
API_VERSION = 2  # EDGERCNN_CUDA_API_VERSION in src/common/edgercnn_cuda_api.h
SIZE_MAX = 2 ** (8 * ctypes.sizeof(ctypes.c_size_t)) - 1
FLOAT32, FLOAT16 = 0, 1
INT64, INT32 = 0, 1
NMS_AUTO, NMS_BITMASK, NMS_GREEDY = 0, 1, 2


class CudaKernelsError(EdgercnnError):
    """The CUDA kernel library cannot be found, built or called."""


def _sources() -> list[Path]:
    return sorted((SOURCE_DIR / "cuda").glob("*.cu")) + sorted((SOURCE_DIR / "common").glob("*.h"))


def _cache_root() -> Path:
    root = os.environ.get("EDGERCNN_CACHE_DIR")
    if root:
        return Path(root) / "plugins"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgercnn" / "plugins"


def nvcc_command(output: Path, arch: str) -> list[str]:
    cu = [str(p) for p in _sources() if p.suffix == ".cu"]
    return [
        "nvcc",
        "-std=c++17",
        "-O3",
        f"-arch={arch}",
        "-shared",
        "-Xcompiler",
        "-fPIC",
        "-o",
        str(output),
        *cu,
    ]


def build_with_nvcc(arch: str | None = None) -> Path:
    arch = arch or os.environ.get("EDGERCNN_CUDA_ARCH", "native")
    if shutil.which("nvcc") is None:
        raise CudaKernelsError("nvcc not found: set EDGERCNN_PLUGIN_CUDA_LIB or build plugins/ with CMake")
    digest = hashlib.sha256(arch.encode())
    for path in _sources():
        digest.update(path.read_bytes())
    target = _cache_root() / f"cuda-{digest.hexdigest()[:16]}" / LIB_NAME
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    result = subprocess.run(nvcc_command(Path(tmp), arch), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        Path(tmp).unlink(missing_ok=True)
        raise CudaKernelsError(f"nvcc failed:\n{result.stderr[-3000:]}")
    os.replace(tmp, target)
    return target


def find_library() -> Path:
    env = os.environ.get("EDGERCNN_PLUGIN_CUDA_LIB")
    if env:
        return Path(env)
    built = sorted(SOURCE_DIR.parent.glob(f"build*/{LIB_NAME}"))
    return built[0] if built else build_with_nvcc()


def _ptr(t: torch.Tensor | None) -> ctypes.c_void_p:
    return ctypes.c_void_p(0 if t is None else t.data_ptr())


def _stream() -> ctypes.c_void_p:
    return ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)


class CudaKernels:
    """ctypes bindings of ``libedgercnn_kernels``; every call is enqueued on torch's current stream."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or find_library()
        self._lib = ctypes.CDLL(str(self.path))
        found = self._lib.edgercnn_cuda_api_version()
        if found != API_VERSION:
            raise CudaKernelsError(
                f"{self.path}: CUDA kernel API version {found}, needed {API_VERSION}: rebuild plugins/"
            )
        i32, i64, f32, vp = ctypes.c_int32, ctypes.c_int64, ctypes.c_float, ctypes.c_void_p
        roi = self._lib.edgercnn_cuda_multi_level_roi_align
        roi.restype = ctypes.c_int
        roi.argtypes = [
            i32,
            i32,
            vp,
            ctypes.POINTER(vp),
            i32,
            ctypes.POINTER(i64),
            ctypes.POINTER(i64),
            i64,
            i64,
            i64,
            ctypes.POINTER(f32),
            i32,
            i32,
            i32,
            i32,
            i32,
            i32,
            i32,
            f32,
            vp,
            vp,
        ]
        ws = self._lib.edgercnn_cuda_batched_nms_workspace_size
        ws.restype = ctypes.c_size_t
        ws.argtypes = [i64, i64, i64, i32]
        nms = self._lib.edgercnn_cuda_batched_nms
        nms.restype = ctypes.c_int
        nms.argtypes = [
            i32,
            i32,
            vp,
            vp,
            vp,
            i64,
            i64,
            ctypes.c_double,
            f32,
            i64,
            i64,
            vp,
            vp,
            vp,
            ctypes.c_size_t,
            i32,
            vp,
        ]

    def multi_level_roi_align(
        self,
        rois: torch.Tensor,
        features: Sequence[torch.Tensor],
        output_size: tuple[int, int],
        spatial_scales: Sequence[float],
        sampling_ratio: int,
        aligned: bool,
        mode: int = 0,
        canonical_scale: int = 224,
        canonical_level: int = 4,
        eps: float = 1e-6,
    ) -> torch.Tensor:
        """CUDA rois ``[N, R, 4]`` (float32 or float16, kept as given: the TensorRT plugin always
        passes float32), features ``[N, C, H_l, W_l]`` (one dtype) -> ``[N, R, C, oh, ow]``."""
        feats = [f.contiguous() for f in features]
        rois = rois.contiguous()
        if rois.dtype not in (torch.float32, torch.float16):
            rois = rois.float()
        n, r, _ = rois.shape
        c = feats[0].shape[1]
        out = torch.empty((n, r, c, *output_size), dtype=feats[0].dtype, device=feats[0].device)
        levels = len(feats)
        ptrs = (ctypes.c_void_p * levels)(*[f.data_ptr() for f in feats])
        heights = (ctypes.c_int64 * levels)(*[f.shape[2] for f in feats])
        widths = (ctypes.c_int64 * levels)(*[f.shape[3] for f in feats])
        scales = (ctypes.c_float * levels)(*spatial_scales)
        dtype = FLOAT16 if feats[0].dtype == torch.float16 else FLOAT32
        status = self._lib.edgercnn_cuda_multi_level_roi_align(
            dtype,
            FLOAT16 if rois.dtype == torch.float16 else FLOAT32,
            _ptr(rois),
            ptrs,
            levels,
            heights,
            widths,
            n,
            r,
            c,
            scales,
            output_size[0],
            output_size[1],
            sampling_ratio,
            int(aligned),
            mode,
            canonical_scale,
            canonical_level,
            eps,
            _ptr(out),
            _stream(),
        )
        if status != 0:
            raise CudaKernelsError(f"edgercnn_cuda_multi_level_roi_align returned {status}")
        return out

    def nms_workspace(self, batch: int, boxes: int, pre_nms_top_n: int, algorithm: int) -> int:
        """Workspace bytes; refuses where the library cannot know them (cub's size query failed)."""
        size = int(self._lib.edgercnn_cuda_batched_nms_workspace_size(batch, boxes, pre_nms_top_n, algorithm))
        if size == SIZE_MAX:
            raise CudaKernelsError(
                f"{self.path}: NMS workspace size unknown for batch {batch}, {boxes} boxes (bad sizes, or "
                "cub could not query the device)"
            )
        return size

    def batched_nms(
        self,
        boxes: torch.Tensor,
        scores: torch.Tensor,
        idxs: torch.Tensor,
        iou_threshold: float,
        score_threshold: float,
        max_output: int,
        pre_nms_top_n: int = -1,
        algorithm: int = NMS_AUTO,
        workspace: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """CUDA ``[N, B, 4]``, ``[N, B]``, ``[N, B]`` -> keep ``[N, K]`` (-1 pad), count ``[N]``."""
        boxes, scores, idxs = boxes.contiguous(), scores.contiguous().to(boxes.dtype), idxs.contiguous()
        n, b, _ = boxes.shape
        size = self.nms_workspace(n, b, pre_nms_top_n, algorithm)
        if workspace is None or workspace.numel() < size:
            workspace = torch.empty(max(size, 1), dtype=torch.uint8, device=boxes.device)
        keep = torch.empty((n, max_output), dtype=torch.int64, device=boxes.device)
        count = torch.empty((n,), dtype=torch.int64, device=boxes.device)
        if idxs.dtype not in (torch.int32, torch.int64):
            idxs = idxs.long()
        dtype = FLOAT16 if boxes.dtype == torch.float16 else FLOAT32
        idx_dtype = INT32 if idxs.dtype == torch.int32 else INT64
        status = self._lib.edgercnn_cuda_batched_nms(
            dtype,
            idx_dtype,
            _ptr(boxes),
            _ptr(scores),
            _ptr(idxs),
            n,
            b,
            iou_threshold,
            score_threshold,
            max_output,
            pre_nms_top_n,
            _ptr(keep),
            _ptr(count),
            _ptr(workspace),
            workspace.numel(),
            algorithm,
            _stream(),
        )
        if status != 0:
            raise CudaKernelsError(f"edgercnn_cuda_batched_nms returned {status}")
        return keep, count
