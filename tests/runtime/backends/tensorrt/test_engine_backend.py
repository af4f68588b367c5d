"""Host-side parts of the TensorRT backend: buffer planning from engine I/O descriptions, input
checks, batch splitting, which plugin library is loaded, and TensorRT detection."""

from __future__ import annotations

import ctypes
import math
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from edgercnn.runtime.backends.tensorrt import plugins as trt_plugins
from edgercnn.runtime.backends.tensorrt.backend import (
    EngineTensor,
    GraphReplay,
    batch_chunks,
    check_batch,
    plan_buffers,
)
from edgercnn.runtime.backends.tensorrt.cuda import CudaGraph
from edgercnn.runtime.backends.tensorrt.plugins import import_tensorrt
from edgercnn.runtime.errors import BackendError

MASKRCNN_IO = [
    EngineTensor("images", True, "FLOAT", (-1, 3, 288, 384), (8, 3, 288, 384)),
    EngineTensor("num_detections", False, "INT64", (-1,)),
    EngineTensor("boxes", False, "FLOAT", (-1, 100, 4)),
    EngineTensor("scores", False, "FLOAT", (-1, 100)),
    EngineTensor("labels", False, "INT64", (-1, 100)),
    EngineTensor("masks", False, "HALF", (-1, 100, 28, 28)),
]


def test_dynamic_batch_buffers_are_sized_for_the_profile_max() -> None:
    specs, max_batch = plan_buffers(MASKRCNN_IO)
    assert max_batch == 8
    sizes = {s.name: s.nbytes for s in specs}
    itemsize = {"FLOAT": 4, "INT64": 8, "HALF": 2}
    for tensor in MASKRCNN_IO:
        shape = (8, *tensor.shape[1:])
        assert sizes[tensor.name] == math.prod(shape) * itemsize[tensor.trt_dtype]
    masks = next(s for s in specs if s.name == "masks")
    assert masks.dtype == "float16" and masks.shape_for(3) == (3, 100, 28, 28)
    assert [s.is_input for s in specs] == [True] + [False] * 5


def test_fixed_batch_buffers_match_the_engine_shapes() -> None:
    tensors = [
        EngineTensor("images", True, "UINT8", (2, 3, 64, 96)),
        EngineTensor("boxes", False, "FLOAT", (2, 10, 4)),
    ]
    specs, max_batch = plan_buffers(tensors)
    assert max_batch is None
    assert [(s.max_shape, s.nbytes, s.dtype) for s in specs] == [
        ((2, 3, 64, 96), 2 * 3 * 64 * 96, "uint8"),
        ((2, 10, 4), 2 * 10 * 4 * 4, "float32"),
    ]


def test_smallest_profile_max_bounds_the_batch() -> None:
    tensors = [
        EngineTensor("a", True, "FLOAT", (-1, 4), (8, 4)),
        EngineTensor("b", True, "FLOAT", (-1, 4), (6, 4)),
        EngineTensor("o", False, "FLOAT", (-1, 4)),
    ]
    assert plan_buffers(tensors)[1] == 6


@pytest.mark.parametrize(
    ("tensors", "expected"),
    [
        ([EngineTensor("o", False, "FLOAT", (1, 4))], "no input"),
        ([EngineTensor("i", True, "FLOAT", (1, 3, -1, -1), (1, 3, 8, 8))], "dynamic axes"),
        ([EngineTensor("i", True, "FLOAT", (-1, 3))], "no optimization profile"),
        ([EngineTensor("i", True, "BF16", (1, 3))], "numpy cannot hold"),
        (
            [EngineTensor("i", True, "FLOAT", (1, 3)), EngineTensor("o", False, "FLOAT", (-1, 3))],
            "every input is fixed",
        ),
    ],
)
def test_engines_the_backend_cannot_serve_are_refused(tensors: list[EngineTensor], expected: str) -> None:
    with pytest.raises(BackendError, match=expected):
        plan_buffers(tensors)


def test_input_checks_name_the_model_and_the_shapes() -> None:
    specs, _ = plan_buffers(MASKRCNN_IO)
    model = Path("m.engine")
    assert check_batch(np.zeros((3, 3, 288, 384), np.float32), specs[0], model) == 3
    with pytest.raises(BackendError, match=r"m\.engine: input 'images' has shape \[1, 3, 100, 100\]"):
        check_batch(np.zeros((1, 3, 100, 100), np.float32), specs[0], model)
    with pytest.raises(BackendError, match="needs 4 dimensions"):
        check_batch(np.zeros((3, 288, 384), np.float32), specs[0], model)
    with pytest.raises(BackendError, match="empty batch"):
        check_batch(np.zeros((0, 3, 288, 384), np.float32), specs[0], model)


def test_batches_beyond_the_profile_are_split() -> None:
    assert batch_chunks(5, None) == [(0, 5)]
    assert batch_chunks(8, 8) == [(0, 8)]
    assert batch_chunks(19, 8) == [(0, 8), (8, 16), (16, 19)]


def test_a_stubs_only_tensorrt_counts_as_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    stub = types.ModuleType("tensorrt")  # what `import tensorrt` gives with only tensorrt-stubs installed
    monkeypatch.setattr(trt_plugins.importlib, "import_module", lambda name: stub)
    with pytest.raises(BackendError, match="only type stubs"):
        import_tensorrt()

    def missing(name: str) -> None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    monkeypatch.setattr(trt_plugins.importlib, "import_module", missing)
    with pytest.raises(BackendError, match="TensorRT is not installed"):
        import_tensorrt()


class _FakeGraph:
    def __init__(self) -> None:
        self.launches = 0
        self.destroyed = False

    def launch(self, stream: object) -> None:
        self.launches += 1

    def destroy(self) -> None:
        self.destroyed = True


def test_cuda_graph_is_replayed_only_after_a_plain_run_at_the_current_shape(
    capsys: pytest.CaptureFixture[str],
) -> None:
    graphs: list[_FakeGraph] = []
    runs: list[str] = []

    def capture(stream: object, enqueue: Callable[[], None]) -> _FakeGraph:
        enqueue()  # recorded into the graph, not run
        graphs.append(_FakeGraph())
        return graphs[-1]

    replay = GraphReplay(True, "m.engine", capture)  # type: ignore[arg-type]
    stream = object()

    def frame() -> str:
        return replay.run(stream, lambda: runs.append("enqueue"))  # type: ignore[arg-type]

    assert [frame(), frame(), frame()] == ["plain", "captured", "replayed"]
    replay.shape_changed()  # batch 1 -> 4: the old graph must never be replayed again
    assert graphs[0].destroyed
    assert [frame(), frame(), frame()] == ["plain", "captured", "replayed"]
    assert graphs[1].launches == 2 and graphs[0].launches == 2
    assert GraphReplay(False, "m.engine", capture).run(stream, lambda: None) == "plain"  # type: ignore[arg-type]
    assert capsys.readouterr().err == ""


def test_refused_cuda_graph_capture_falls_back_to_plain_runs(capsys: pytest.CaptureFixture[str]) -> None:
    runs: list[str] = []
    replay = GraphReplay(True, "m.engine", lambda stream, enqueue: None)
    stream = object()
    results = [replay.run(stream, lambda: runs.append("enqueue")) for _ in range(4)]  # type: ignore[arg-type]
    assert results == ["plain"] * 4 and len(runs) == 4  # every frame still ran
    assert replay.failed
    assert capsys.readouterr().err.count("CUDA graph capture refused") == 1


class _FakeDriver:
    """The libcuda calls CudaGraph.capture makes; a graph handle comes back from EndCapture."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def cuStreamBeginCapture_v2(self, stream: object, mode: int) -> int:
        self.calls.append("begin")
        return 0

    def cuStreamEndCapture(self, stream: object, graph_ref: object) -> int:
        self.calls.append("end")
        ctypes.cast(graph_ref, ctypes.POINTER(ctypes.c_void_p))[0] = 1234
        return 0

    def cuGraphDestroy(self, graph: object) -> int:
        self.calls.append("destroy")
        return 0

    def cuGraphInstantiateWithFlags(self, exec_ref: object, graph: object, flags: object) -> int:
        self.calls.append("instantiate")
        return 0


def test_capture_refused_by_tensorrt_ends_the_capture_and_returns_none() -> None:
    """execute_async_v3 returning False inside the capture used to escape as an exception."""
    driver = _FakeDriver()
    stream = types.SimpleNamespace(handle=7)

    def refused() -> None:
        raise BackendError("m.engine: execute_async_v3 failed (see TensorRT's log above)")

    assert CudaGraph.capture(stream, refused, lib=driver) is None  # type: ignore[arg-type]
    assert driver.calls == ["begin", "end", "destroy"]
    driver.calls.clear()
    assert CudaGraph.capture(stream, lambda: None, lib=driver) is not None  # type: ignore[arg-type]
    assert driver.calls == ["begin", "end", "instantiate"]
