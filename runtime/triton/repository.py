"""Write a Triton model repository for an exported model, so nobody writes ``config.pbtxt`` by hand.

Models written (``<name>`` is the repository's base name):

- ``<name>``: python backend, the runtime's ``Detector``; ``IMAGE`` (encoded) or ``FRAME`` (BGR)
  in, detections out (``runtime/triton/protocol.py``), dynamic batching;
- ``<name>_graph``: python backend, the graph's own tensors (what ``--backend triton`` sends);
- ``<name>_pre`` / ``<name>_post``: python pre/post-processing, the ends of every ensemble;
- ``<name>_ensemble_python``: pre -> ``<name>_graph`` -> post (runs on any server, CPU too);
- ``<name>_onnx`` + ``<name>_ensemble_onnx`` (``onnxruntime=True``): the ONNX on Triton's
  onnxruntime backend (GPU, or CPU);
- ``<name>_trt`` + ``<name>_ensemble_trt`` (``engine=...``): the engine as ``tensorrt_plan``
  (GPU only); TensorRT-flavour engines need the plugin library loaded by the server
  (``--backend-config=tensorrt,plugins=...`` or ``LD_PRELOAD``), never named by the repository.

Tensor names, dtypes and dims come from the model itself (its onnxruntime session), the batch
from the graph (``max_batch_size`` = the fixed batch, or ``max_batch`` for a dynamic one).
Configs are built as Triton's ``ModelConfig`` protobuf (from ``tritonclient``) and written in
its text format, so they are valid by construction. Python models carry a copy of this runtime.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..backends.base import TensorSpec, open_backend
from ..config import ModelConfig
from ..errors import BackendError, UsageError
from ..validators import check_non_negative_int, check_positive_int
from . import protocol

RUNTIME_COPY = "edgercnn_runtime"
_RUNTIME_DIR = Path(__file__).resolve().parent.parent
_NUMPY_TO_TRITON = {
    "float32": "TYPE_FP32",
    "float16": "TYPE_FP16",
    "uint8": "TYPE_UINT8",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
    "bool": "TYPE_BOOL",
}
_WIRE_TO_CONFIG = {"FP32": "TYPE_FP32", "INT32": "TYPE_INT32", "INT64": "TYPE_INT64", "BYTES": "TYPE_STRING"}


def model_config_pb2() -> Any:
    """Triton's model-config protobuf, as shipped in ``tritonclient[grpc]``."""
    try:
        from tritonclient.grpc import model_config_pb2 as pb
    except ModuleNotFoundError as exc:
        raise BackendError(
            f"writing a Triton repository needs tritonclient[grpc] ({exc.name!r} is missing): "
            "pip install 'edgercnn[triton]'"
        ) from exc
    return pb


@dataclass(frozen=True)
class RepositoryOptions:
    """What the user chooses; everything else is read from the model."""

    name: str
    max_batch: int = 8  # for dynamic-batch graphs and the python detect model
    instances: int = 1
    queue_delay_us: int = 2000
    device: str = "cpu"  # what the python models run onnxruntime on: cpu | cuda | auto
    threads: int | None = None
    onnxruntime: bool = False
    engine: Path | None = None
    gpus: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        """The API refuses what the command line refuses, with the same words."""
        check_positive_int(self.max_batch, "max_batch")
        check_positive_int(self.instances, "instances")
        check_non_negative_int(self.queue_delay_us, "queue_delay_us")
        if self.threads is not None:
            check_positive_int(self.threads, "threads")


def triton_dtype(numpy_dtype: str, where: str) -> str:
    if numpy_dtype not in _NUMPY_TO_TRITON:
        raise BackendError(f"{where}: dtype {numpy_dtype!r} has no Triton equivalent")
    return _NUMPY_TO_TRITON[numpy_dtype]


def graph_batching(graph_batch: int | None, max_batch: int) -> tuple[int, bool]:
    """(max_batch_size, whether the batch axis is Triton's) for a graph model.

    A dynamic graph takes any batch up to ``max_batch``; a batch-1 graph is Triton's batch of at
    most 1; a fixed batch > 1 cannot take Triton's smaller batches, so it is served unbatched
    (``max_batch_size: 0``, the full shape in ``dims``).
    """
    if graph_batch is None:
        return max_batch, True
    if graph_batch == 1:
        return 1, True
    return 0, False


def _dims(spec: TensorSpec, batched: bool) -> list[int]:
    shape = spec.shape[1:] if batched else spec.shape
    return [-1 if d is None else int(d) for d in shape]


def _add_tensor(collection: Any, name: str, data_type: str, dims: list[int], optional: bool = False) -> None:
    tensor = collection.add()
    tensor.name = name
    tensor.data_type = model_config_pb2().DataType.Value(data_type)
    if dims:
        tensor.dims.extend(dims)
    else:  # a tensor with only the batch axis: Triton wants dims, the model sees no extra axis
        tensor.dims.append(1)
        tensor.reshape.SetInParent()
    if optional:
        tensor.optional = True


def _set_parameters(cfg: Any, values: dict[str, str]) -> None:
    for key, value in values.items():
        cfg.parameters[key].string_value = value


def _instance_group(cfg: Any, kind: str, count: int, gpus: tuple[int, ...]) -> None:
    group = cfg.instance_group.add()
    group.count = count
    group.kind = model_config_pb2().ModelInstanceGroup.Kind.Value(kind)
    if kind == "KIND_GPU" and gpus:
        group.gpus.extend(gpus)


def _dynamic_batching(cfg: Any, options: RepositoryOptions) -> None:
    if cfg.max_batch_size > 0:
        cfg.dynamic_batching.max_queue_delay_microseconds = options.queue_delay_us


def _detection_outputs(cfg: Any, config: ModelConfig) -> None:
    for name, wire, dims in protocol.detection_outputs(config):
        _add_tensor(cfg.output, name, _WIRE_TO_CONFIG[wire], dims)


class RepositoryWriter:
    """Builds each model's ``ModelConfig`` and writes the folders; ``write`` does it all."""

    def __init__(self, model_path: Path, options: RepositoryOptions) -> None:
        self.model_path = model_path
        self.options = options
        self.config = ModelConfig.from_model_file(model_path)
        backend = open_backend(model_path, backend="onnxruntime", device="cpu", config=self.config)
        try:
            self.inputs, self.outputs = list(backend.inputs), list(backend.outputs)
        finally:
            backend.close()
        self.config_json = json.dumps(self.config.to_dict(), separators=(",", ":"))
        # the graph's own batch axis decides, not what its metadata says; an engine's, its sidecar
        self.max_batch, self.batched = graph_batching(self.inputs[0].shape[0], options.max_batch)
        self.batching = {"graph": (self.max_batch, self.batched), "onnx": (self.max_batch, self.batched)}
        self.engine_config: ModelConfig | None = None
        if options.engine is not None:
            self.engine_config = self._check_engine(options.engine)
            self.batching["trt"] = graph_batching(self.engine_config.batch, options.max_batch)

    def _check_engine(self, engine: Path) -> ModelConfig:
        """The engine must be this graph (same input and outputs), per its sidecar."""
        cfg = ModelConfig.from_model_file(engine)
        mine, theirs = self.config.input, cfg.input
        same = (mine.name, mine.height, mine.width, mine.dtype, self.config.outputs) == (
            theirs.name, theirs.height, theirs.width, theirs.dtype, cfg.outputs
        )  # fmt: skip
        if not same:
            raise UsageError(
                f"--engine {engine}: built from another graph than {self.model_path.name} (input "
                f"{theirs.name} {theirs.dtype} {theirs.height}x{theirs.width}, outputs {list(cfg.outputs)}"
                " vs "
                f"{mine.name} {mine.dtype} {mine.height}x{mine.width}, {list(self.config.outputs)})"
            )
        return cfg

    # --- configs ---------------------------------------------------------------------------------

    def _base(self, name: str, backend: str = "", platform: str = "", max_batch: int | None = None) -> Any:
        cfg = model_config_pb2().ModelConfig()
        cfg.name = name
        if backend:
            cfg.backend = backend
        if platform:
            cfg.platform = platform
        cfg.max_batch_size = self.max_batch if max_batch is None else max_batch
        _set_parameters(cfg, {protocol.CONFIG_PARAMETER: self.config_json})
        return cfg

    def _python(self, name: str, role: str, max_batch: int | None = None) -> Any:
        cfg = self._base(name, backend="python", max_batch=max_batch)
        params = {protocol.ROLE_PARAMETER: role, "edgercnn.device": self.options.device}
        if self.options.threads:
            params["edgercnn.threads"] = str(self.options.threads)
        _set_parameters(cfg, params)
        _instance_group(cfg, "KIND_CPU", self.options.instances, ())
        _dynamic_batching(cfg, self.options)
        return cfg

    def _graph_tensors(self, cfg: Any, batched: bool) -> None:
        for spec in self.inputs:
            _add_tensor(
                cfg.input,
                spec.name,
                triton_dtype(spec.dtype, str(self.model_path)),
                _dims(spec, batched),
            )
        for spec in self.outputs:
            _add_tensor(
                cfg.output,
                spec.name,
                triton_dtype(spec.dtype, str(self.model_path)),
                _dims(spec, batched),
            )

    def detect_config(self) -> Any:
        cfg = self._python(self.options.name, "detect", max_batch=self.options.max_batch)
        _add_tensor(cfg.input, protocol.IMAGE, "TYPE_STRING", [1], optional=True)
        _add_tensor(cfg.input, protocol.FRAME, "TYPE_UINT8", [-1, -1, 3], optional=True)
        _detection_outputs(cfg, self.config)
        return cfg

    def graph_config(self, suffix: str) -> Any:
        name = f"{self.options.name}_{suffix}"
        max_batch, batched = self.batching[suffix]
        if suffix == "graph":
            cfg = self._python(name, "graph", max_batch=max_batch)
        else:
            if suffix == "onnx":
                cfg = self._base(name, backend="onnxruntime", max_batch=max_batch)
            else:
                cfg = self._base(name, platform="tensorrt_plan", max_batch=max_batch)
            _instance_group(cfg, "KIND_GPU", self.options.instances, self.options.gpus)
            _dynamic_batching(cfg, self.options)
        self._graph_tensors(cfg, batched)
        return cfg

    def pre_config(self) -> Any:
        cfg = self._python(f"{self.options.name}_pre", "preprocess", max_batch=self.options.max_batch)
        _add_tensor(cfg.input, protocol.IMAGE, "TYPE_STRING", [1])
        spec = self.inputs[0]
        _add_tensor(cfg.output, spec.name, triton_dtype(spec.dtype, str(self.model_path)), _dims(spec, True))
        _add_tensor(cfg.output, protocol.TRANSFORM, "TYPE_FP64", [protocol.TRANSFORM_SIZE])
        return cfg

    def post_config(self) -> Any:
        cfg = self._python(f"{self.options.name}_post", "postprocess", max_batch=self.options.max_batch)
        for spec in self.outputs:
            _add_tensor(
                cfg.input, spec.name, triton_dtype(spec.dtype, str(self.model_path)), _dims(spec, True)
            )
        _add_tensor(cfg.input, protocol.TRANSFORM, "TYPE_FP64", [protocol.TRANSFORM_SIZE])
        _detection_outputs(cfg, self.config)
        return cfg

    def ensemble_config(self, suffix: str) -> Any:
        base = self.options.name
        graph_suffix = "graph" if suffix == "python" else suffix
        cfg = self._base(
            f"{base}_ensemble_{suffix}", platform="ensemble", max_batch=self.batching[graph_suffix][0]
        )
        _add_tensor(cfg.input, protocol.IMAGE, "TYPE_STRING", [1])
        _detection_outputs(cfg, self.config)
        graph_input = self.inputs[0].name
        pre = cfg.ensemble_scheduling.step.add()
        pre.model_name, pre.model_version = f"{base}_pre", -1
        pre.input_map[protocol.IMAGE] = protocol.IMAGE
        pre.output_map[graph_input] = "graph_input"
        pre.output_map[protocol.TRANSFORM] = protocol.TRANSFORM
        graph = cfg.ensemble_scheduling.step.add()
        graph.model_name, graph.model_version = f"{base}_{graph_suffix}", -1
        graph.input_map[graph_input] = "graph_input"
        for spec in self.outputs:
            graph.output_map[spec.name] = f"graph_{spec.name}"
        post = cfg.ensemble_scheduling.step.add()
        post.model_name, post.model_version = f"{base}_post", -1
        for spec in self.outputs:
            post.input_map[spec.name] = f"graph_{spec.name}"
        post.input_map[protocol.TRANSFORM] = protocol.TRANSFORM
        for name, _, _ in protocol.detection_outputs(self.config):
            post.output_map[name] = name
        return cfg

    # --- files -----------------------------------------------------------------------------------

    def models(self) -> dict[str, tuple[Any, str]]:
        """model name -> (config, what its version folder holds: python | onnx | plan | none)."""
        o = self.options
        found: dict[str, tuple[Any, str]] = {
            o.name: (self.detect_config(), "python+onnx"),
            f"{o.name}_graph": (self.graph_config("graph"), "python+onnx"),
        }
        graphs = {"python": "graph"}
        if o.onnxruntime:
            found[f"{o.name}_onnx"] = (self.graph_config("onnx"), "onnx")
            graphs["onnx"] = "onnx"
        if o.engine is not None:
            found[f"{o.name}_trt"] = (self.graph_config("trt"), "plan")
            graphs["trt"] = "trt"
        # an ensemble hands on Triton batches; an unbatched graph (fixed batch > 1) cannot take them
        ensembles = [suffix for suffix, graph in graphs.items() if self.batching[graph][1]]
        if ensembles:
            found[f"{o.name}_pre"] = (self.pre_config(), "python")
            found[f"{o.name}_post"] = (self.post_config(), "python")
        for suffix in ensembles:
            found[f"{o.name}_ensemble_{suffix}"] = (self.ensemble_config(suffix), "none")
        return found

    def write(self, out_dir: Path) -> list[str]:
        from google.protobuf import text_format

        if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
            raise UsageError(
                f"{out_dir}: exists and is not empty; choose a new folder (nothing is overwritten)"
            )
        models = self.models()
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, (cfg, holds) in models.items():
            folder = out_dir / name
            version = folder / "1"
            version.mkdir(parents=True)
            (folder / "config.pbtxt").write_text(text_format.MessageToString(cfg), encoding="utf-8")
            if holds.startswith("python"):
                shutil.copyfile(Path(__file__).with_name("python_model.py"), version / "model.py")
                copy_runtime(version / RUNTIME_COPY)
            if holds.endswith("onnx"):
                _link_or_copy(self.model_path, version / "model.onnx")
            if holds == "plan":
                assert self.options.engine is not None
                _link_or_copy(self.options.engine, version / "model.plan")
        (out_dir / "README.md").write_text(self.readme(list(models)), encoding="utf-8")
        return list(models)

    def readme(self, names: list[str]) -> str:
        plugin = ""
        if self.engine_config is not None and self.engine_config.flavour == "tensorrt":
            plugin = (
                "\nThe engine has plugin layers: give the server the plugin library you built "
                "(`--backend-config=tensorrt,plugins=/path/libedgercnn_plugins.so`, or `LD_PRELOAD`).\n"
            )
        return (
            f"# Triton model repository for {self.model_path.name}\n\n"
            "Written by `edgercnn triton`; see docs/triton.md in the edgercnn project.\n\n"
            + "".join(f"- `{n}`\n" for n in names)
            + "\nThe python models need numpy, opencv-python-headless and onnxruntime"
            " in the server's Python.\n" + plugin
        )


def copy_runtime(dest: Path) -> None:
    """This runtime package, as ``edgercnn_runtime``: the python models import nothing else."""
    shutil.copytree(_RUNTIME_DIR, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def _link_or_copy(src: Path, dest: Path) -> None:
    """A copy, not a link: re-exporting over the source later must not change a served model."""
    shutil.copyfile(src, dest)


def write_repository(model_path: str | Path, out_dir: str | Path, options: RepositoryOptions) -> list[str]:
    """Write the repository; returns the model names. Refuses a non-empty ``out_dir``."""
    model_path = Path(model_path)
    if model_path.suffix != ".onnx":
        raise UsageError(f"{model_path}: expected the exported ONNX model (the engine goes in --engine)")
    if options.max_batch < 1 or options.instances < 1:
        raise UsageError("--max-batch and --instances must be >= 1")
    if options.engine is not None and not options.engine.is_file():
        raise UsageError(f"--engine {options.engine}: no such file")
    return RepositoryWriter(model_path, options).write(Path(out_dir))
