"""TensorRT backend: an engine + its sidecar, run with pinned buffers on one CUDA stream.

Per frame: copy the batch into a pinned host buffer, async host-to-device copy, ``execute_async_v3``
(or one launch of a CUDA graph captured for that batch size), async device-to-host copies, one
synchronize; CUDA events around each stage give ``last_timings`` in milliseconds. Buffers are
sized once for the engine's largest profile shape and reused for every frame.

Kept apart so they run (and are tested) without a GPU: ``plan_buffers`` (sizes from the engine's
I/O description) and ``check_batch`` (what the caller handed in). CUDA itself (pycuda behind typed
wrappers, CUDA graphs through the driver API) is in ``cuda.py``; the plugin library in ``plugins.py``.

Never imports torch or ``export``; ``tensorrt`` and ``pycuda`` are imported when an engine opens.
"""

from __future__ import annotations

import hashlib
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...config import ModelConfig
from ...errors import BackendError
from ..base import BackendOptions, TensorSpec
from .cuda import CudaDevice, CudaGraph, CudaStream, query_cuda_device
from .plugins import import_tensorrt, load_plugin_library, plugin_for_engine
from .sidecar import DeviceEnvironment, check_sidecar, read_sidecar

if TYPE_CHECKING:
    import tensorrt as trt

# TensorRT DataType names -> numpy dtype names (types numpy lacks, e.g. BF16/FP8, are refused)
TRT_TO_NUMPY = {
    "FLOAT": "float32",
    "HALF": "float16",
    "INT8": "int8",
    "INT32": "int32",
    "INT64": "int64",
    "BOOL": "bool",
    "UINT8": "uint8",
}


# --- pure: buffer planning and input checks -------------------------------------------------------


@dataclass(frozen=True)
class EngineTensor:
    """An engine I/O tensor as TensorRT describes it (-1 marks the dynamic batch axis)."""

    name: str
    is_input: bool
    trt_dtype: str  # DataType name, e.g. "FLOAT"
    shape: tuple[int, ...]
    max_shape: tuple[int, ...] | None = None  # inputs: the profile's max shape


@dataclass(frozen=True)
class BufferSpec:
    """One host/device buffer pair, sized for the largest batch the engine accepts."""

    name: str
    is_input: bool
    dtype: str
    shape: tuple[int, ...]  # -1 on the batch axis when dynamic
    max_shape: tuple[int, ...]
    nbytes: int

    def shape_for(self, batch: int) -> tuple[int, ...]:
        return tuple(batch if d < 0 else d for d in self.shape)


def numpy_dtype(trt_dtype: str, name: str) -> str:
    try:
        return TRT_TO_NUMPY[trt_dtype]
    except KeyError:
        raise BackendError(f"engine tensor {name!r} has type {trt_dtype}, which numpy cannot hold") from None


def plan_buffers(tensors: Sequence[EngineTensor]) -> tuple[list[BufferSpec], int | None]:
    """Buffers for every I/O tensor and the max batch (None: fixed batch).

    Only the leading (batch) axis may be dynamic; it is bounded by the inputs' profile max, and
    outputs take the same batch. Anything else dynamic (data-dependent output sizes) has no
    place in edgercnn's static graphs and is refused.
    """
    inputs = [t for t in tensors if t.is_input]
    if not inputs:
        raise BackendError("engine has no input tensor")
    max_batch: int | None = None
    for t in tensors:
        bad = [i for i, d in enumerate(t.shape) if d < 0 and i != 0]
        if bad:
            raise BackendError(
                f"engine tensor {t.name!r} has dynamic axes {bad} besides the batch: unsupported"
            )
    for t in inputs:
        if t.shape and t.shape[0] < 0:
            if t.max_shape is None:
                raise BackendError(f"engine input {t.name!r} has a dynamic batch but no optimization profile")
            max_batch = t.max_shape[0] if max_batch is None else min(max_batch, t.max_shape[0])
    specs: list[BufferSpec] = []
    for t in tensors:
        dtype = numpy_dtype(t.trt_dtype, t.name)
        if t.shape and t.shape[0] < 0:
            if max_batch is None:
                raise BackendError(f"engine output {t.name!r} has a dynamic batch but every input is fixed")
            max_shape = (max_batch, *t.shape[1:])
        else:
            max_shape = t.shape
        nbytes = max(math.prod(max_shape), 1) * np.dtype(dtype).itemsize
        specs.append(BufferSpec(t.name, t.is_input, dtype, t.shape, max_shape, nbytes))
    return specs, max_batch


def check_batch(batch: np.ndarray, spec: BufferSpec, model_path: Path) -> int:
    """Validate one input array against its buffer; returns the batch size."""
    if batch.ndim != len(spec.shape):
        raise BackendError(
            f"{model_path}: input {spec.name!r} needs {len(spec.shape)} dimensions {list(spec.shape)}, "
            f"got shape {list(batch.shape)}"
        )
    fixed = [(i, d) for i, d in enumerate(spec.shape) if d >= 0]
    wrong = [(i, d) for i, d in fixed if batch.shape[i] != d]
    if wrong:
        raise BackendError(
            f"{model_path}: input {spec.name!r} has shape {list(batch.shape)}, the engine needs "
            f"{list(spec.shape)} (-1: any batch)"
        )
    if batch.shape[0] < 1:
        raise BackendError(f"{model_path}: empty batch for input {spec.name!r}")
    return int(batch.shape[0])


def batch_chunks(total: int, max_batch: int | None) -> list[tuple[int, int]]:
    """Split a batch larger than the engine's profile max into runs the engine accepts."""
    if max_batch is None or total <= max_batch:
        return [(0, total)]
    return [(start, min(start + max_batch, total)) for start in range(0, total, max_batch)]


def dims_tuple(dims: trt.Dims) -> tuple[int, ...]:
    """TensorRT ``Dims`` as a tuple of ints (-1 for a dynamic axis)."""
    return tuple(int(dims[i]) for i in range(len(dims)))


def engine_tensors(engine: trt.ICudaEngine) -> list[EngineTensor]:
    """Describe the engine's I/O tensors (profile 0 gives the inputs' max shapes)."""
    import tensorrt as trt

    tensors: list[EngineTensor] = []
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        shape = dims_tuple(engine.get_tensor_shape(name))
        max_shape = None
        if is_input and any(d < 0 for d in shape):
            max_shape = dims_tuple(engine.get_tensor_profile_shape(name, 0)[2])
        tensors.append(EngineTensor(name, is_input, engine.get_tensor_dtype(name).name, shape, max_shape))
    return tensors


# --- CUDA graph policy (pure: capture is injected) -----------------------------------------------


class GraphReplay:
    """When to replay a CUDA graph of ``execute_async_v3`` and when to enqueue plainly.

    A graph holds what TensorRT enqueued for the context's shapes at capture time. After
    ``set_input_shape`` TensorRT redoes shape-dependent set-up during the next plain enqueue, so
    a graph is only replayed if it was captured since the last shape change: a shape change
    drops the graph, the next frame runs plainly (the re-enqueue TensorRT needs), the one after
    captures a graph and replays it until the shape changes again. A refused capture turns
    graphs off for this engine with one warning.
    """

    def __init__(
        self,
        enabled: bool,
        where: str,
        capture: Callable[[CudaStream, Callable[[], None]], CudaGraph | None] | None = None,
    ) -> None:
        self.enabled = enabled
        self._where = where
        self._capture = capture if capture is not None else CudaGraph.capture
        self._graph: CudaGraph | None = None
        self._plain_since_change = False
        self.failed = False

    def shape_changed(self) -> None:
        if self._graph is not None:
            self._graph.destroy()
            self._graph = None
        self._plain_since_change = False

    def run(self, stream: CudaStream, enqueue: Callable[[], None]) -> str:
        """Run one inference; returns "plain", "captured" or "replayed" (for tests and logs)."""
        if not self.enabled or self.failed or not self._plain_since_change:
            enqueue()
            self._plain_since_change = True
            return "plain"
        if self._graph is None:
            graph = self._capture(stream, enqueue)
            if graph is None:
                self.failed = True
                print(
                    f"warning: {self._where}: CUDA graph capture refused; running without graphs",
                    file=sys.stderr,
                )
                enqueue()
                return "plain"
            self._graph = graph
            graph.launch(stream)
            return "captured"
        self._graph.launch(stream)
        return "replayed"


# --- the backend ---------------------------------------------------------------------------------


class TensorRTBackend:
    """An engine ready to run: sidecar checked, buffers bound, stream and events created.

    ``options.extra``: ``plugin_lib`` (path), ``cuda_graph`` (bool: replay a CUDA graph of the run
    while the batch size stays the same, see ``GraphReplay``; only for engines whose plugins are
    capture-safe), ``check_sidecar``
    (bool, default True; False only to debug a sidecar problem).
    """

    def __init__(self, model_path: Path, config: ModelConfig, options: BackendOptions) -> None:
        self.model_path = model_path
        self.config = config
        self.last_timings: dict[str, float] = {}
        self._graphs = GraphReplay(bool(options.extra.get("cuda_graph", False)), str(model_path))
        _trt_or_backend_error(model_path)
        import tensorrt as trt

        self._logger: trt.ILogger = trt.Logger(trt.Logger.WARNING)
        sidecar = read_sidecar(model_path)
        checked = bool(options.extra.get("check_sidecar", True))
        # Only a library the user named is loaded, and only once its bytes hash to the sidecar's.
        plugin = plugin_for_engine(options.extra.get("plugin_lib"), sidecar, model_path)
        plugin_sha = load_plugin_library(
            self._logger, plugin, sidecar.engine.plugin_sha256 if checked else None
        )
        engine_bytes = model_path.read_bytes()
        if checked:
            device_env = DeviceEnvironment(
                tensorrt_version=trt.__version__,
                gpu=query_cuda_device(options.device_id),
                plugin_sha256=plugin_sha,
            )
            digest = hashlib.sha256(engine_bytes).hexdigest()
            for warning in check_sidecar(model_path, sidecar, device_env, engine_sha256=digest):
                print(f"warning: {warning}", file=sys.stderr)
        self._cuda = CudaDevice(options.device_id)
        try:
            self._runtime = trt.Runtime(self._logger)
            if sidecar.engine.dla_core is not None:
                self._runtime.DLA_core = sidecar.engine.dla_core
            self._engine = self._runtime.deserialize_cuda_engine(engine_bytes)
            if self._engine is None:
                raise BackendError(
                    f"{model_path}: TensorRT could not deserialize the engine (see its log above)"
                )
            self._context = self._engine.create_execution_context()
            self._specs, self.max_batch = plan_buffers(engine_tensors(self._engine))
            inputs = [s for s in self._specs if s.is_input]
            if len(inputs) != 1:
                raise BackendError(f"{model_path}: expected one image input, the engine has {len(inputs)}")
            self._host = {s.name: self._cuda.pinned_empty(s.max_shape, s.dtype) for s in self._specs}
            self._device = {s.name: self._cuda.alloc(s.nbytes) for s in self._specs}
            for spec in self._specs:
                if not self._context.set_tensor_address(spec.name, self._device[spec.name].ptr):
                    raise BackendError(f"{model_path}: cannot bind tensor {spec.name!r}")
            self._stream = self._cuda.stream()
            self._events = [self._cuda.event() for _ in range(4)]
            self._bound_batch: int | None = None
        except BaseException:
            self._release_device_state()
            raise
        self._cuda.pop()
        self.inputs = [_tensor_spec(s) for s in self._specs if s.is_input]
        self.outputs = [_tensor_spec(s) for s in self._specs if not s.is_input]
        dla = f", dla{sidecar.engine.dla_core}" if sidecar.engine.dla_core is not None else ""
        self.name = f"tensorrt[{sidecar.engine.precision}{dla}]"

    def infer(self, batch: np.ndarray | dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        spec = next(s for s in self._specs if s.is_input)
        array = batch[spec.name] if isinstance(batch, dict) else batch
        total = check_batch(array, spec, self.model_path)
        if array.dtype != np.dtype(spec.dtype):
            array = array.astype(spec.dtype)
        parts = [self._infer_chunk(array[a:b]) for a, b in batch_chunks(total, self.max_batch)]
        if len(parts) == 1:
            return parts[0]
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    def _infer_chunk(self, array: np.ndarray) -> dict[str, np.ndarray]:
        spec = next(s for s in self._specs if s.is_input)
        n = int(array.shape[0])
        self._cuda.push()
        try:
            if n != self._bound_batch:
                if not self._context.set_input_shape(spec.name, spec.shape_for(n)):
                    raise BackendError(f"{self.model_path}: the engine refuses batch {n} for {spec.name!r}")
                self._bound_batch = n
                self._graphs.shape_changed()
            host_in = self._view(spec, n)
            np.copyto(host_in, array)
            start, copied_in, ran, copied_out = self._events
            start.record(self._stream)
            self._cuda.copy_to_device(self._device[spec.name], host_in, self._stream)
            copied_in.record(self._stream)
            self._execute(n)
            ran.record(self._stream)
            outputs = [s for s in self._specs if not s.is_input]
            for out in outputs:
                self._cuda.copy_to_host(self._view(out, n), self._device[out.name], self._stream)
            copied_out.record(self._stream)
            self._stream.synchronize()
            self.last_timings = {
                "h2d_ms": copied_in.elapsed_ms_since(start),
                "execute_ms": ran.elapsed_ms_since(copied_in),
                "d2h_ms": copied_out.elapsed_ms_since(ran),
            }
            return {out.name: self._view(out, n).copy() for out in outputs}
        finally:
            self._cuda.pop()

    def _view(self, spec: BufferSpec, batch: int) -> np.ndarray:
        shape = spec.shape_for(batch)
        return self._host[spec.name].reshape(-1)[: math.prod(shape)].reshape(shape)

    def _execute(self, batch: int) -> None:
        def enqueue() -> None:
            if not self._context.execute_async_v3(self._stream.handle):
                raise BackendError(f"{self.model_path}: execute_async_v3 failed (see TensorRT's log above)")

        self._graphs.run(self._stream, enqueue)

    def close(self) -> None:
        if getattr(self, "_cuda", None) is None:
            return
        self._cuda.push()
        self._release_device_state()

    def _release_device_state(self) -> None:
        """Free graphs, TensorRT objects and buffers (context pushed), then the CUDA context."""
        try:
            self._graphs.shape_changed()
            # context before engine before runtime; pycuda objects while their context is current
            for name in ("_context", "_engine", "_runtime", "_events", "_stream", "_host"):
                if hasattr(self, name):
                    delattr(self, name)
            for buffer in getattr(self, "_device", {}).values():
                buffer.free()
        finally:
            self._cuda.close()
            self._cuda = None  # type: ignore[assignment]


def _tensor_spec(spec: BufferSpec) -> TensorSpec:
    return TensorSpec(spec.name, tuple(None if d < 0 else d for d in spec.shape), spec.dtype)


def _trt_or_backend_error(model_path: Path) -> Any:
    try:
        return import_tensorrt()
    except BackendError as exc:
        raise BackendError(f"{model_path}: {exc}") from None


def create(model_path: Path, config: ModelConfig, options: BackendOptions) -> TensorRTBackend:
    return TensorRTBackend(model_path, config, options)
