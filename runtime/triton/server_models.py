"""What the python-backend models of a generated repository do, on this runtime only.

``python_model.py`` (copied as each model's ``model.py``) imports this module from the runtime
copy beside it and hands over Triton's ``triton_python_backend_utils`` module, so that nothing
here imports Triton. The role comes from the model's ``config.pbtxt``:

- ``detect``: encoded images or BGR frames -> detections, with the runtime's ``Detector``;
- ``graph``: the graph's own input tensor -> its outputs (what ``--backend triton`` sends);
- ``preprocess`` / ``postprocess``: the two ends of an ensemble around an ``onnxruntime`` or
  ``tensorrt_plan`` model.

Triton hands ``execute`` every request its dynamic batcher gathered; they run as one batch, and
a request that cannot be read gets its own error response while the others are answered.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..backends.base import open_backend
from ..config import ModelConfig
from ..detector import Detector
from ..errors import EdgercnnError
from ..postprocess import postprocess
from ..preprocess import prepare_batch
from . import protocol

MODEL_FILE = "model.onnx"


def _parameter(model_config: dict[str, Any], key: str, default: str = "") -> str:
    value = model_config.get("parameters", {}).get(key, {})
    return str(value.get("string_value", default)) if isinstance(value, dict) else default


def _optional(pb_utils: Any, request: Any, name: str) -> np.ndarray | None:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return None if tensor is None else tensor.as_numpy()


class ServerModel:
    """One python-backend model instance; ``execute`` answers Triton's list of requests."""

    def __init__(self, pb_utils: Any, args: dict[str, Any], version_dir: Path) -> None:
        self.pb = pb_utils
        self.model_config = json.loads(args["model_config"])
        self.name = str(self.model_config.get("name", "model"))
        self.role = _parameter(self.model_config, protocol.ROLE_PARAMETER)
        self.config = ModelConfig.from_dict(
            json.loads(_parameter(self.model_config, protocol.CONFIG_PARAMETER)), self.name
        )
        device = _parameter(self.model_config, "edgercnn.device", "cpu")
        threads_text = _parameter(self.model_config, "edgercnn.threads", "")
        threads = int(threads_text) if threads_text else None
        self.backend = None
        self.detector: Detector | None = None
        if self.role in ("detect", "graph"):
            model_path = version_dir / MODEL_FILE
            self.backend = open_backend(model_path, device=device, threads=threads, config=self.config)
            if self.role == "detect":
                self.detector = Detector(self.config, self.backend)
        elif self.role not in ("preprocess", "postprocess"):
            raise EdgercnnError(
                f"{self.name}: unknown {protocol.ROLE_PARAMETER} {self.role!r} in config.pbtxt"
            )
        self.graph_input = self.config.input.name

    def execute(self, requests: list[Any]) -> list[Any]:
        handler = {
            "detect": self._detect,
            "graph": self._graph,
            "preprocess": self._preprocess,
            "postprocess": self._postprocess,
        }[self.role]
        try:
            return handler(requests)
        except Exception as exc:  # the whole batch failed: every request hears why, the server serves on
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return [self._error(first) for _ in requests]

    # --- helpers ---------------------------------------------------------------------------------

    def _error(self, message: str) -> Any:
        return self.pb.InferenceResponse(
            output_tensors=[], error=self.pb.TritonError(f"{self.name}: {message}")
        )

    def _respond(self, outputs: dict[str, np.ndarray], start: int, stop: int) -> Any:
        tensors = [self.pb.Tensor(name, value[start:stop]) for name, value in outputs.items()]
        return self.pb.InferenceResponse(output_tensors=tensors)

    def _answer(
        self, readable: list[tuple[int, int]], outputs: dict[str, np.ndarray] | None, responses: list[Any]
    ) -> list[Any]:
        """Fill the readable requests' slots with their rows of the batch outputs."""
        row = 0
        for index, count in readable:
            assert outputs is not None
            responses[index] = self._respond(outputs, row, row + count)
            row += count
        return responses

    def _read_images(self, requests: list[Any]) -> tuple[list[np.ndarray], list[tuple[int, int]], list[Any]]:
        images: list[np.ndarray] = []
        readable: list[tuple[int, int]] = []
        responses: list[Any] = [None] * len(requests)
        for index, request in enumerate(requests):
            try:
                rows = protocol.images_from_inputs(
                    _optional(self.pb, request, protocol.IMAGE),
                    _optional(self.pb, request, protocol.FRAME),
                    f"request {index}",
                )
            except EdgercnnError as exc:
                responses[index] = self._error(str(exc))
                continue
            readable.append((index, len(rows)))
            images.extend(rows)
        return images, readable, responses

    # --- roles -----------------------------------------------------------------------------------

    def _detect(self, requests: list[Any]) -> list[Any]:
        images, readable, responses = self._read_images(requests)
        if not images:
            return responses
        assert self.detector is not None
        dets = self.detector.detect(images)
        return self._answer(readable, protocol.pack_detections(dets, self.config), responses)

    def _graph(self, requests: list[Any]) -> list[Any]:
        batches = [self.pb.get_input_tensor_by_name(r, self.graph_input).as_numpy() for r in requests]
        counts = [b.shape[0] for b in batches]
        batch = np.concatenate(batches, axis=0)
        assert self.backend is not None
        fixed = self.backend.inputs[0].shape[0]  # the graph's batch axis: None when dynamic
        if fixed is None:
            outputs = self.backend.infer(batch)
        else:  # a fixed-batch graph: run it in chunks of its batch, padding the last one
            parts = []
            for start in range(0, batch.shape[0], fixed):
                chunk = batch[start : start + fixed]
                real = chunk.shape[0]
                if real < fixed:
                    chunk = np.concatenate([chunk, np.zeros((fixed - real, *chunk.shape[1:]), chunk.dtype)])
                parts.append({k: v[:real] for k, v in self.backend.infer(chunk).items()})
            outputs = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        return self._answer(list(enumerate(counts)), outputs, [None] * len(requests))

    def _preprocess(self, requests: list[Any]) -> list[Any]:
        images, readable, responses = self._read_images(requests)
        if not images:
            return responses
        batch, transforms = prepare_batch(images, self.config)
        outputs = {
            self.graph_input: batch,
            protocol.TRANSFORM: np.stack([protocol.transform_vector(t) for t in transforms]),
        }
        return self._answer(readable, outputs, responses)

    def _postprocess(self, requests: list[Any]) -> list[Any]:
        responses = []
        for request in requests:  # cheap next to the graph; per request keeps rows simple
            outputs = {
                name: self.pb.get_input_tensor_by_name(request, name).as_numpy()
                for name in self.config.outputs
            }
            vectors = self.pb.get_input_tensor_by_name(request, protocol.TRANSFORM).as_numpy()
            transforms = [protocol.transform_from_vector(v) for v in vectors]
            dets = postprocess(outputs, transforms, self.config)
            packed = protocol.pack_detections(dets, self.config)
            responses.append(self._respond(packed, 0, len(transforms)))
        return responses

    def finalize(self) -> None:
        if self.backend is not None:
            self.backend.close()
