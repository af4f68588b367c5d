"""A real ``tritonserver`` (the ``nvidia-pytriton`` wheel's binary, CPU) on a generated repository.

One server for the module; the stop-mid-run check starts its own. References are the local
runtime's detections on the same frames (same ONNX, onnxruntime on this CPU).
"""

from __future__ import annotations

import threading
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from edgercnn.runtime.backends.base import open_backend
from edgercnn.runtime.detector import Detector
from edgercnn.runtime.errors import BackendError
from edgercnn.runtime.triton import protocol
from edgercnn.runtime.triton.local_server import LocalServer, free_port, serving_env
from edgercnn.runtime.triton.repository import RepositoryOptions, write_repository
from pycocotools import mask as mask_utils

from tests.cli import verb
from tests.triton.conftest import sample_frames

run_main = verb("run")


def _shm_regions() -> set[str]:
    return {p.name for p in Path("/dev/shm").glob("triton_python_backend_shm_region_*")}


def _orphaned(regions: set[str]) -> set[str]:
    """Regions no live process maps: leaked ones. Another xdist worker's server may hold its own
    regions meanwhile; those are mapped by its processes and are not a leak of the server stopped here."""
    mapped: set[str] = set()
    for maps in Path("/proc").glob("[0-9]*/maps"):
        try:
            text = maps.read_text()
        except OSError:
            continue
        mapped.update(name for name in regions if name in text)
    return regions - mapped


@pytest.fixture(scope="module")
def repository(mask_onnx, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("served") / "models"
    write_repository(mask_onnx, out, RepositoryOptions(name="mask", max_batch=8, queue_delay_us=20000))
    return out


@pytest.fixture(scope="module")
def server(repository, tmp_path_factory):
    env = serving_env()
    srv = LocalServer(repository, tmp_path_factory.mktemp("log") / "tritonserver.log").start(env)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return sample_frames(4)


@pytest.fixture(scope="module")
def local(mask_onnx, frames):
    detector = Detector.open(mask_onnx, device="cpu")
    dets = detector.detect(frames)
    assert sum(len(d) for d in dets) > 0, "the reference finds nothing: the comparison would prove nothing"
    return dets


def _grpc(server) -> grpcclient.InferenceServerClient:
    return grpcclient.InferenceServerClient(server.grpc_url.removeprefix("grpc://"))


def _image_input(module, data: bytes):
    tensor = module.InferInput(protocol.IMAGE, [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[data]], dtype=object))
    return tensor


def _png(frame: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".png", frame)  # lossless: both sides decode the same pixels
    assert ok
    return buffer.tobytes()


def _outputs(result, names) -> dict[str, np.ndarray]:
    return {n: result.as_numpy(n) for n in names}


def _assert_same(remote: protocol.RemoteDetections, reference) -> None:
    assert len(remote) == len(reference)
    assert remote.image_size == reference.image_size
    np.testing.assert_array_equal(remote.labels, reference.labels)
    np.testing.assert_allclose(remote.boxes, reference.boxes, atol=1e-3)
    np.testing.assert_allclose(remote.scores, reference.scores, atol=1e-5)
    if len(reference):
        ious = mask_utils.iou(remote.mask_rles, reference.mask_rles(), [0] * len(reference))
        assert np.diag(ious).min() > 0.99


OUTPUT_NAMES = ("num_detections", "boxes", "scores", "labels", "image_size", "masks")


@pytest.mark.parametrize("model", ["mask", "mask_ensemble_python"])
def test_image_in_models_return_the_local_runtimes_detections(server, frames, local, model):
    client = _grpc(server)
    for frame, reference in zip(frames, local, strict=True):
        result = client.infer(model, [_image_input(grpcclient, _png(frame))])
        (remote,) = protocol.unpack_detections(_outputs(result, OUTPUT_NAMES))
        _assert_same(remote, reference)


def test_raw_bgr_frames_in_one_request_return_the_local_runtimes_detections(server, frames, local):
    client = _grpc(server)
    batch = np.stack(frames)
    tensor = grpcclient.InferInput(protocol.FRAME, list(batch.shape), "UINT8")
    tensor.set_data_from_numpy(batch)
    result = client.infer("mask", [tensor])
    for remote, reference in zip(
        protocol.unpack_detections(_outputs(result, OUTPUT_NAMES)), local, strict=True
    ):
        _assert_same(remote, reference)


@pytest.mark.parametrize("scheme", ["grpc", "http"])
def test_detector_on_the_triton_backend_equals_the_local_detector(server, frames, local, scheme):
    url = (server.grpc_url if scheme == "grpc" else server.http_url) + "/mask_graph?timeout=30"
    detector = Detector.open(url)
    assert detector.backend.name.startswith("triton[")
    try:
        for remote, reference in zip(detector.detect(frames), local, strict=True):
            assert len(remote) == len(reference)
            np.testing.assert_array_equal(remote.labels, reference.labels)
            np.testing.assert_allclose(remote.boxes, reference.boxes, atol=1e-3)
            np.testing.assert_array_equal(remote.masks, reference.masks)
    finally:
        detector.close()


def test_concurrent_grpc_and_http_clients_are_answered_correctly_in_batched_executions(server, frames, local):
    before = _grpc(server).get_inference_statistics("mask", as_json=True)["model_stats"][0]
    errors: list[str] = []

    def client_thread(index: int) -> None:
        module = grpcclient if index % 2 == 0 else httpclient
        address = (server.grpc_url if module is grpcclient else server.http_url).split("://")[1]
        client = module.InferenceServerClient(
            address, **({} if module is grpcclient else {"network_timeout": 120})
        )
        for step in range(3):
            k = (index + step) % len(frames)
            result = client.infer("mask", [_image_input(module, _png(frames[k]))])
            (remote,) = protocol.unpack_detections(_outputs(result, OUTPUT_NAMES))
            try:
                _assert_same(remote, local[k])
            except AssertionError as exc:
                errors.append(f"client {index} frame {k}: {exc}")
        client.close()

    threads = [threading.Thread(target=client_thread, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    after = _grpc(server).get_inference_statistics("mask", as_json=True)["model_stats"][0]
    inferences = int(after["inference_count"]) - int(before.get("inference_count", 0))
    executions = int(after["execution_count"]) - int(before.get("execution_count", 0))
    assert inferences == 24
    assert executions < inferences  # the dynamic batcher ran several requests per execution


def test_the_metrics_endpoint_counts_the_models_requests(server, frames):
    _grpc(server).infer("mask", [_image_input(grpcclient, _png(frames[0]))])
    with urllib.request.urlopen(server.metrics_url, timeout=10) as reply:
        text = reply.read().decode()
    line = next(x for x in text.splitlines() if x.startswith('nv_inference_request_success{model="mask"'))
    assert float(line.split()[-1]) >= 1


def test_bad_requests_get_a_clear_error_and_the_server_keeps_serving(server, frames, local):
    client = _grpc(server)
    wrong_dtype = grpcclient.InferInput(protocol.FRAME, [1, 8, 8, 3], "FP32")
    wrong_dtype.set_data_from_numpy(np.zeros((1, 8, 8, 3), np.float32))
    wrong_shape = grpcclient.InferInput(protocol.FRAME, [1, 8, 8, 4], "UINT8")
    wrong_shape.set_data_from_numpy(np.zeros((1, 8, 8, 4), np.uint8))
    frame = grpcclient.InferInput(protocol.FRAME, [1, 8, 8, 3], "UINT8")
    frame.set_data_from_numpy(np.zeros((1, 8, 8, 3), np.uint8))
    cases = {
        "dtype": ([wrong_dtype], "FP32"),
        "shape": ([wrong_shape], "shape"),
        "corrupt JPEG": (
            [_image_input(grpcclient, b"\xff\xd8\xff\xe0 not really a jpeg")],
            "not a usable image (truncated JPEG",
        ),
        "both inputs": ([_image_input(grpcclient, _png(frames[0])), frame], "exactly one of"),
    }
    for what, (inputs, expected) in cases.items():
        with pytest.raises(grpcclient.InferenceServerException) as caught:
            client.infer("mask", inputs)
        assert expected in caught.value.message(), (what, caught.value.message())
    result = client.infer("mask", [_image_input(grpcclient, _png(frames[1]))])
    (remote,) = protocol.unpack_detections(_outputs(result, OUTPUT_NAMES))
    _assert_same(remote, local[1])


def test_a_server_or_model_that_is_not_there_is_named_in_one_line(server):
    with pytest.raises(BackendError, match="cannot reach the Triton server"):
        open_backend(f"grpc://127.0.0.1:{free_port()}/mask_graph?timeout=2")
    with pytest.raises(BackendError, match=r"no such model \(it has: .*mask_graph"):
        open_backend(server.grpc_url + "/nope")
    with pytest.raises(BackendError, match="not the graph input"):
        open_backend(server.http_url + "/mask")


def test_run_verb_sends_frames_to_triton(server, frames, tmp_path, capsys):
    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), frames[0])
    code = run_main(["--model", server.grpc_url + "/mask_graph", "--backend", "triton",
                     "--source", str(image), "--out", str(tmp_path / "out"), "--no-images"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert "backend triton[grpc://" in capsys.readouterr().err
    assert list((tmp_path / "out").rglob("*.jsonl"))


def test_stopping_the_server_mid_run_gives_the_runtimes_clear_error(repository, frames, tmp_path):
    regions_before = _shm_regions()
    srv = LocalServer(repository, tmp_path / "log.txt").start()
    try:
        detector = Detector.open(srv.grpc_url + "/mask_graph?timeout=30&retries=1")
        assert len(detector.detect(frames[:1])) == 1
    finally:
        srv.stop()
    with pytest.raises(BackendError, match=r"failed after 2 tries.*is the server still running"):
        detector.detect(frames[:1])
    assert srv.process is not None
    with pytest.raises(ProcessLookupError):  # the server and its python stubs are all gone
        import os

        os.killpg(srv.process.pid, 0)
    assert not _orphaned(_shm_regions() - regions_before)
