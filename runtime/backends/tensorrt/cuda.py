"""CUDA for the TensorRT path without torch: the device's identity from the driver API (ctypes),
typed wrappers over pycuda (context, pinned memory, buffers, streams, events), and CUDA graphs.

``pycuda`` has no type stubs, so every use of it goes through the small typed ``CudaDevice``
wrapper; CUDA graphs, which pycuda does not wrap, go through the driver API with ctypes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

from ...errors import BackendError
from .sidecar import GpuInfo

# --- the device's identity, from the CUDA driver API (no pycuda, no torch) ------------------------

_CU_ATTR_CC_MAJOR = 75
_CU_ATTR_CC_MINOR = 76


class GpuUnavailableError(BackendError):
    """No CUDA driver or no device at the given index."""


def _load_libcuda() -> ctypes.CDLL:
    names = ["libcuda.so.1", "libcuda.so", ctypes.util.find_library("cuda") or "", "nvcuda.dll"]
    for name in filter(None, names):
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    raise GpuUnavailableError("no CUDA driver library (libcuda) here: is the NVIDIA driver installed?")


def query_cuda_device(index: int = 0) -> GpuInfo:
    """Name and compute capability of CUDA device ``index`` from the driver API."""
    lib = _load_libcuda()

    def call(result: int, what: str) -> None:
        if result != 0:
            raise GpuUnavailableError(f"CUDA driver call {what} failed: CUresult {result} (device {index})")

    call(lib.cuInit(0), "cuInit")
    device = ctypes.c_int()
    call(lib.cuDeviceGet(ctypes.byref(device), index), "cuDeviceGet")
    name = ctypes.create_string_buffer(256)
    call(lib.cuDeviceGetName(name, 256, device), "cuDeviceGetName")
    major, minor = ctypes.c_int(), ctypes.c_int()
    call(lib.cuDeviceGetAttribute(ctypes.byref(major), _CU_ATTR_CC_MAJOR, device), "cuDeviceGetAttribute")
    call(lib.cuDeviceGetAttribute(ctypes.byref(minor), _CU_ATTR_CC_MINOR, device), "cuDeviceGetAttribute")
    cc = f"{major.value}.{minor.value}"
    return GpuInfo(name=name.value.decode("utf-8", "replace"), compute_capability=cc)


# --- typed wrappers over pycuda and the CUDA driver's graph API ---------------------------------


class DeviceBuffer:
    """Device memory; ``ptr`` is the address TensorRT binds."""

    def __init__(self, allocation: Any) -> None:
        self._allocation = allocation
        self.ptr: int = int(allocation)

    def free(self) -> None:
        if self._allocation is not None:
            self._allocation.free()
            self._allocation = None


class CudaStream:
    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.handle: int = int(stream.handle)

    @property
    def raw(self) -> Any:
        return self._stream

    def synchronize(self) -> None:
        self._stream.synchronize()


class CudaEvent:
    def __init__(self, event: Any) -> None:
        self._event = event

    def record(self, stream: CudaStream) -> None:
        self._event.record(stream.raw)

    def elapsed_ms_since(self, start: CudaEvent) -> float:
        return float(self._event.time_since(start._event))


class CudaDevice:
    """pycuda behind typed methods: the device's primary context (the one TensorRT uses),
    pinned host arrays, device buffers, async copies, streams and events."""

    def __init__(self, device_index: int) -> None:
        try:
            self._cuda: Any = importlib.import_module("pycuda.driver")
        except ImportError as exc:
            raise BackendError(
                f"the TensorRT backend needs pycuda ({exc}); pip install pycuda (docs/jetson.md)"
            ) from exc
        self._cuda.init()
        if device_index >= self._cuda.Device.count():
            raise BackendError(
                f"CUDA device {device_index} does not exist ({self._cuda.Device.count()} found)"
            )
        self._context: Any = self._cuda.Device(device_index).retain_primary_context()
        self._context.push()

    def push(self) -> None:
        self._context.push()

    def pop(self) -> None:
        self._cuda.Context.pop()

    def pinned_empty(self, shape: tuple[int, ...], dtype: str) -> np.ndarray:
        array: np.ndarray = self._cuda.pagelocked_empty(shape, np.dtype(dtype))
        return array

    def alloc(self, nbytes: int) -> DeviceBuffer:
        return DeviceBuffer(self._cuda.mem_alloc(nbytes))

    def stream(self) -> CudaStream:
        return CudaStream(self._cuda.Stream())

    def event(self) -> CudaEvent:
        return CudaEvent(self._cuda.Event())

    def copy_to_device(self, dst: DeviceBuffer, src: np.ndarray, stream: CudaStream) -> None:
        self._cuda.memcpy_htod_async(dst.ptr, src, stream.raw)

    def copy_to_host(self, dst: np.ndarray, src: DeviceBuffer, stream: CudaStream) -> None:
        self._cuda.memcpy_dtoh_async(dst, src.ptr, stream.raw)

    def close(self) -> None:
        self._cuda.Context.pop()
        self._context.detach()


class CudaGraph:
    """A CUDA graph captured from work enqueued on a stream (driver API through ctypes)."""

    _MODE_THREAD_LOCAL = 1

    def __init__(self, exec_handle: ctypes.c_void_p, graph: ctypes.c_void_p, lib: ctypes.CDLL) -> None:
        self._exec = exec_handle
        self._graph = graph
        self._lib = lib

    @classmethod
    def capture(cls, stream: CudaStream, enqueue: Callable[[], None], lib: Any = None) -> CudaGraph | None:
        """Capture ``enqueue`` on ``stream``; None when the driver or the work refuses capture.

        A refusal can come from the driver (begin/end/instantiate fail) or from TensorRT itself
        (``execute_async_v3`` returns False while capturing, e.g. a plugin that synchronizes): in
        every case the capture is ended, any partial graph destroyed, and the caller falls back
        to plain enqueues. ``lib`` replaces libcuda in tests.
        """
        if lib is None:
            try:
                lib = ctypes.CDLL("libcuda.so.1")
            except OSError:
                return None
        handle = ctypes.c_void_p(stream.handle)
        if lib.cuStreamBeginCapture_v2(handle, cls._MODE_THREAD_LOCAL) != 0:
            return None
        graph = ctypes.c_void_p()
        refused = False
        try:
            enqueue()
        except BackendError:
            refused = True
        finally:
            ended = lib.cuStreamEndCapture(handle, ctypes.byref(graph))
        if refused or ended != 0 or not graph.value:
            if graph.value:
                lib.cuGraphDestroy(graph)
            return None
        exec_handle = ctypes.c_void_p()
        if lib.cuGraphInstantiateWithFlags(ctypes.byref(exec_handle), graph, ctypes.c_ulonglong(0)) != 0:
            lib.cuGraphDestroy(graph)
            return None
        return cls(exec_handle, graph, lib)

    def launch(self, stream: CudaStream) -> None:
        result = self._lib.cuGraphLaunch(self._exec, ctypes.c_void_p(stream.handle))
        if result != 0:
            raise BackendError(f"cuGraphLaunch failed with CUresult {result}")

    def destroy(self) -> None:
        self._lib.cuGraphExecDestroy(self._exec)
        self._lib.cuGraphDestroy(self._graph)
