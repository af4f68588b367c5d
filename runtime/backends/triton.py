"""Triton backend: ``infer`` sends the graph's input batch to a Triton server and reads its outputs.

The model is named by a URL, ``grpc://host:8001/<model>`` or ``http://host:8000/<model>``, where
``<model>`` is a graph model of a repository written by ``edgercnn triton`` (``<name>_graph``,
``<name>_onnx`` or ``<name>_trt``: the same tensors as the local graph). The model's config comes
from the server (the ``edgercnn.config`` parameter of its ``config.pbtxt``), so a camera needs no
model file. Options (URL query or keyword): ``timeout`` seconds per call (default 10),
``retries`` after a failed call (default 2, with backoff), ``version`` of the model.
The server and the model must be ready when the backend opens, or it says which is not.
"""

from __future__ import annotations

import importlib
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from ..config import ModelConfig
from ..errors import BackendError, UsageError
from .base import BackendOptions, TensorSpec

SCHEMES = ("grpc", "http")
CONFIG_PARAMETER = "edgercnn.config"
_CONFIG_TO_NUMPY = {
    "TYPE_FP32": "float32",
    "TYPE_FP16": "float16",
    "TYPE_FP64": "float64",
    "TYPE_UINT8": "uint8",
    "TYPE_INT32": "int32",
    "TYPE_INT64": "int64",
    "TYPE_BOOL": "bool",
    "TYPE_STRING": "object",
}
_NUMPY_TO_WIRE = {"float32": "FP32", "float16": "FP16", "uint8": "UINT8", "int32": "INT32", "int64": "INT64"}
_RETRYABLE_STATUS = {
    "StatusCode.UNAVAILABLE",
    "StatusCode.DEADLINE_EXCEEDED",
    "StatusCode.RESOURCE_EXHAUSTED",
    "502",
    "503",
    "504",
}


@dataclass(frozen=True)
class TritonTarget:
    url: str
    scheme: str
    address: str  # host:port
    model: str
    version: str
    timeout: float
    retries: int


def parse_target(url: str, extra: dict[str, Any] | None = None) -> TritonTarget:
    """URL (and keyword options, which win) -> where to connect and how patiently."""
    parts = urlsplit(url)
    model = parts.path.strip("/")
    if parts.scheme not in SCHEMES or not parts.netloc or not model or "/" in model:
        raise UsageError(f"{url}: a Triton model is grpc://host:port/<model> or http://host:port/<model>")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    options = {**query, **{k: v for k, v in (extra or {}).items() if v is not None}}
    unknown = set(options) - {"timeout", "retries", "version"}
    if unknown:
        raise UsageError(
            f"{url}: unknown Triton option(s) {', '.join(sorted(unknown))} (timeout, retries, version)"
        )
    try:
        timeout = float(options.get("timeout", 10.0))
        retries = int(options.get("retries", 2))
    except ValueError as exc:
        raise UsageError(f"{url}: timeout must be seconds and retries a count ({exc})") from None
    if timeout <= 0 or retries < 0:
        raise UsageError(f"{url}: timeout must be > 0 and retries >= 0")
    return TritonTarget(
        url, parts.scheme, parts.netloc, model, str(options.get("version", "")), timeout, retries
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class TritonBackend:
    """A graph model on a Triton server behind the runtime's ``Backend`` interface."""

    def __init__(self, target: TritonTarget) -> None:
        self.target = target
        self.name = f"triton[{target.scheme}://{target.address}/{target.model}]"
        module_name = "tritonclient.grpc" if target.scheme == "grpc" else "tritonclient.http"
        try:
            self._tc = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            raise BackendError(
                f"{target.url}: the triton backend needs {module_name} ({exc.name!r} is missing): "
                "pip install 'edgercnn[triton]'"
            ) from exc
        if target.scheme == "grpc":
            self.client = self._tc.InferenceServerClient(url=target.address)
        else:
            self.client = self._tc.InferenceServerClient(
                url=target.address, connection_timeout=target.timeout, network_timeout=target.timeout
            )
        self._check_ready()
        model_config = self._model_config()
        self.config = self._edgercnn_config(model_config)
        self.max_batch_size = int(model_config.get("max_batch_size", 0))
        batched = self.max_batch_size > 0
        self.inputs = [self._spec(t, batched) for t in model_config.get("input", [])]
        self.outputs = [self._spec(t, batched) for t in model_config.get("output", [])]
        if [t.name for t in self.inputs] != [self.config.input.name]:
            raise BackendError(
                f"{target.url}: takes {[t.name for t in self.inputs]}, not the graph input "
                f"{self.config.input.name!r}; point --backend triton at the <name>_graph, <name>_onnx or "
                "<name>_trt model (the image-in models are for clients that send images)"
            )
        self._input = self.inputs[0]
        self._output_names = [t.name for t in self.outputs]

    # --- opening ---------------------------------------------------------------------------------

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        kw = dict(kwargs)
        if self.target.scheme == "grpc":
            kw["client_timeout"] = self.target.timeout
        try:
            return fn(*args, **kw)
        except Exception as exc:  # tritonclient raises its own, gevent and grpc errors
            raise BackendError(
                f"{self.target.url}: cannot reach the Triton server at {self.target.address} ({what}: "
                f"{_first_line(exc)}); is tritonserver running and the port right?"
            ) from exc

    def _check_ready(self) -> None:
        if not self._call("server ready", self.client.is_server_ready):
            raise BackendError(f"{self.target.url}: the Triton server at {self.target.address} is not ready")
        if not self._call("model ready", self.client.is_model_ready, self.target.model, self.target.version):
            raise BackendError(
                f"{self.target.url}: model {self.target.model!r} is not ready: {self._why_not()}"
            )

    def _why_not(self) -> str:
        kwargs = {"as_json": True} if self.target.scheme == "grpc" else {}
        index = self._call("repository index", self.client.get_model_repository_index, **kwargs)
        models = index.get("models", []) if isinstance(index, dict) else index
        for entry in models:
            if entry.get("name") == self.target.model:
                return f"state {entry.get('state', '?')}: {entry.get('reason', '') or 'no reason given'}"
        names = sorted({str(m.get("name")) for m in models})
        return f"the server has no such model (it has: {', '.join(names) or 'none'})"

    def _model_config(self) -> dict[str, Any]:
        if self.target.scheme == "grpc":
            reply = self._call("model config", self.client.get_model_config, self.target.model,
                               self.target.version, as_json=True)  # fmt: skip
            return dict(reply.get("config", {}))
        return dict(
            self._call("model config", self.client.get_model_config, self.target.model, self.target.version)
        )

    def _edgercnn_config(self, model_config: dict[str, Any]) -> ModelConfig:
        value = model_config.get("parameters", {}).get(CONFIG_PARAMETER, {}).get("string_value")
        if not value:
            raise BackendError(
                f"{self.target.url}: model {self.target.model!r} has no {CONFIG_PARAMETER!r} parameter; "
                "serve a repository written by 'edgercnn triton'"
            )
        try:
            return ModelConfig.from_dict(json.loads(value), self.target.url)
        except json.JSONDecodeError as exc:
            raise BackendError(f"{self.target.url}: {CONFIG_PARAMETER} is not valid JSON ({exc})") from exc

    @staticmethod
    def _spec(tensor: dict[str, Any], batched: bool) -> TensorSpec:
        dims = [int(d) for d in tensor.get("dims", [])]
        if tensor.get("reshape") is not None:
            dims = [int(d) for d in tensor["reshape"].get("shape", [])]
        shape = tuple(None if d < 0 else d for d in dims)
        dtype = _CONFIG_TO_NUMPY.get(str(tensor.get("data_type")), str(tensor.get("data_type")))
        return TensorSpec(str(tensor["name"]), ((None, *shape) if batched else shape), dtype)

    # --- inference -------------------------------------------------------------------------------

    def _request(self, chunk: np.ndarray) -> dict[str, np.ndarray]:
        tc = self._tc
        wire = _NUMPY_TO_WIRE[self._input.dtype]
        infer_input = tc.InferInput(self._input.name, list(chunk.shape), wire)
        infer_input.set_data_from_numpy(np.ascontiguousarray(chunk))
        outputs = [tc.InferRequestedOutput(name) for name in self._output_names]
        kwargs: dict[str, Any] = {"model_version": self.target.version, "outputs": outputs}
        if self.target.scheme == "grpc":
            kwargs["client_timeout"] = self.target.timeout
        result = self.client.infer(self.target.model, [infer_input], **kwargs)
        return {name: result.as_numpy(name) for name in self._output_names}

    def _retryable(self, exc: BaseException) -> bool:
        if isinstance(exc, self._tc.InferenceServerException):
            status = exc.status()
            return status is None or str(status) in _RETRYABLE_STATUS
        return True  # connection-level errors (refused, reset, timed out)

    def _infer_chunk(self, chunk: np.ndarray) -> dict[str, np.ndarray]:
        attempts = self.target.retries + 1
        for attempt in range(attempts):
            try:
                return self._request(chunk)
            except Exception as exc:
                if not self._retryable(exc):
                    raise BackendError(
                        f"{self.target.url}: Triton rejected the request: {_first_line(exc)}"
                    ) from exc
                if attempt + 1 == attempts:
                    raise BackendError(
                        f"{self.target.url}: Triton inference failed after {attempts} tries "
                        f"({_first_line(exc)}); is the server still running?"
                    ) from exc
                time.sleep(min(0.2 * 2**attempt, 2.0))
        raise AssertionError("unreachable")

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        if batch.dtype != np.dtype(self._input.dtype):
            batch = batch.astype(self._input.dtype)
        step = self.max_batch_size or batch.shape[0]
        parts = [self._infer_chunk(batch[s : s + step]) for s in range(0, batch.shape[0], step)]
        if len(parts) == 1:
            return parts[0]
        return {name: np.concatenate([p[name] for p in parts]) for name in self._output_names}

    def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            client.close()


def connect(url: str, options: BackendOptions) -> TritonBackend:
    """Open the Triton model ``url`` (see the module doc for the URL and its options)."""
    return TritonBackend(parse_target(url, options.extra))
