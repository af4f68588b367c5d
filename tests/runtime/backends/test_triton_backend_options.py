"""The triton backend's URL and options are checked before anything is sent (no server needed)."""

from __future__ import annotations

import pytest
from edgercnn.runtime.backends.base import is_remote_model, open_backend
from edgercnn.runtime.backends.triton import parse_target
from edgercnn.runtime.errors import BackendError, UsageError

from tests.builders.fixed_onnx import make_tiny_onnx, tiny_config, tiny_outputs


def test_url_query_and_keywords_set_timeout_retries_and_version():
    target = parse_target("grpc://10.0.0.5:8001/mask_onnx?timeout=3&retries=5", {"version": "2"})
    assert (target.scheme, target.address, target.model) == ("grpc", "10.0.0.5:8001", "mask_onnx")
    assert (target.timeout, target.retries, target.version) == (3.0, 5, "2")
    assert parse_target("http://h:8000/m", {"timeout": 1.5}).timeout == 1.5  # keywords win


@pytest.mark.parametrize(
    "url, message",
    [
        ("grpc://h:8001/", "grpc://host:port/<model>"),
        ("grpc://h:8001/a/b", "grpc://host:port/<model>"),
        ("grpc://h:8001/m?timeout=soon", "timeout must be seconds"),
        ("grpc://h:8001/m?retries=-1", "retries >= 0"),
        ("grpc://h:8001/m?tmeout=3", "unknown Triton option(s) tmeout"),
    ],
)
def test_a_bad_triton_url_is_named_in_one_line(url, message):
    with pytest.raises(UsageError) as caught:
        parse_target(url)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_only_grpc_and_http_urls_are_remote_models(tmp_path):
    assert is_remote_model("grpc://h:8001/m") and is_remote_model("http://h:8000/m")
    assert not is_remote_model("rtsp://cam/stream") and not is_remote_model(str(tmp_path / "m.onnx"))


def test_backend_triton_with_a_model_file_says_it_wants_a_url(tmp_path):
    raw = tiny_config()
    model = make_tiny_onnx(tmp_path / "m.onnx", raw, tiny_outputs(raw, 2))
    with pytest.raises(BackendError, match="takes the model as a URL"):
        open_backend(model, backend="triton")
    with pytest.raises(BackendError, match="served by the triton backend, not 'onnxruntime'"):
        open_backend("grpc://127.0.0.1:1/m", backend="onnxruntime")
