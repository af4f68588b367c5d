"""Deploy graph -> ONNX file (portable or TensorRT flavour), checked, simplified and labelled.

``torch.onnx.export(dynamo=True)`` traces the static-shape deploy graph with ``torch.export``;
the two custom ops are translated by ``export.ops.translation_table(flavour)``. Then the model is
checked (``onnx.checker``), shape-inferred, simplified with onnxslim (kept only if the detections
it produces are unchanged), and given its ``edgercnn.config`` metadata. The TorchScript exporter
(``dynamo=False``) is not used here.
"""

from __future__ import annotations

import contextlib
import io
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from edgercnn.export import metadata, ops
from edgercnn.export.deploy import DeployRCNN
from edgercnn.export.deploy.errors import ExportError
from edgercnn.runtime.contract import (
    FLAVOURS,
    INPUT_NAME,
    PLUGIN_DOMAIN,
    PROPOSAL_COUNT_NAME,
    PROPOSALS_NAME,
    Flavour,
)

OPSET = 18
FILE_NAMES = {Flavour.PORTABLE.value: "model.onnx", Flavour.TENSORRT.value: "model.trt.onnx"}
# Simplification must not move detections by more than this (it only folds constants).
SIMPLIFY_TOLERANCE = 1e-4


@dataclass
class ExportResult:
    """What one exported file is, for the summary table and for callers."""

    flavour: str
    path: Path
    seconds: float
    nodes: int
    size_bytes: int
    outputs: list[str]
    simplified: bool
    notes: list[str] = field(default_factory=list)


def trace_to_onnx(deploy: DeployRCNN, flavour: str, batch: int | str = 1) -> onnx.ModelProto:
    """``torch.onnx.export(dynamo=True)`` of the deploy graph with the flavour's op translations."""
    if flavour not in FLAVOURS:
        raise ExportError(f"unknown flavour {flavour!r}; choose from {', '.join(FLAVOURS)}")
    example_batch = 2 if batch == "dynamic" else int(batch)
    example = deploy.example_inputs(example_batch)
    dynamic_shapes = None
    if batch == "dynamic":
        dim = torch.export.Dim("batch", min=1, max=64)
        dynamic_shapes = tuple({0: dim} for _ in example)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            deploy.eval(),
            example,
            dynamo=True,
            opset_version=OPSET,
            input_names=deploy.input_names,
            output_names=deploy.output_names,
            dynamic_shapes=dynamic_shapes,
            custom_translation_table=ops.translation_table(flavour),
            external_data=False,
            optimize=True,
            verbose=False,
        )
    if program is None:
        raise ExportError("torch.onnx.export returned no program")
    return program.model_proto


def check_and_infer(model: onnx.ModelProto) -> onnx.ModelProto:
    """``onnx.checker`` then shape inference (plugin nodes keep the shapes the exporter gave)."""
    onnx.checker.check_model(model)
    return onnx.shape_inference.infer_shapes(model, strict_mode=False)


def plugin_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.domain == PLUGIN_DOMAIN]


def session_for(model: onnx.ModelProto, flavour: str) -> Any | None:
    """An onnxruntime session for ``model``, or ``None`` when its flavour cannot run here
    (TensorRT flavour without the plugins' CPU ops, ``runtime.plugin_ops``)."""
    from edgercnn.runtime.sessions import CPU_PROVIDERS, create_session, session_options

    if flavour == "portable":
        return create_session(model.SerializeToString(), log_severity=3)
    try:
        from edgercnn.runtime import plugin_ops  # type: ignore[attr-defined]
    except ImportError:
        return None
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.trt.onnx"
        onnx.save(model, str(path))
        return plugin_ops.create_session(str(path), session_options(log_severity=3), CPU_PROVIDERS)


def _probe_input(deploy: DeployRCNN, batch: int | str) -> np.ndarray:
    """A seeded noise batch: zero images give no detections and would prove nothing."""
    rng = np.random.default_rng(0)
    n = 2 if batch == "dynamic" else int(batch)
    if deploy.options.input_dtype == "uint8":
        return rng.integers(0, 256, size=(n, *deploy.input_shape), dtype=np.uint8)
    return rng.standard_normal(size=(n, *deploy.input_shape)).astype(np.float32)


def probe_feed(deploy: DeployRCNN, batch: int | str) -> dict[str, np.ndarray]:
    """Every input of a probe run; in Fast R-CNN mode seeded random boxes inside the valid image,
    a different count per image so that padding rows are exercised too."""
    images = _probe_input(deploy, batch)
    feed = {INPUT_NAME: images}
    if deploy.external_proposals:
        rng = np.random.default_rng(1)
        n, rows = images.shape[0], deploy.options.max_proposals
        g = deploy.geometry
        size = np.array([g.valid_width, g.valid_height] * 2, dtype=np.float32)
        # Two corners sorted per coordinate: (x1, y1) <= (x2, y2).
        boxes = np.sort(rng.uniform(0.0, 1.0, size=(n, rows, 2, 2)), axis=2).reshape(n, rows, 4)
        feed[PROPOSALS_NAME] = (boxes * size).astype(np.float32)
        feed[PROPOSAL_COUNT_NAME] = np.array([max(rows - 3 * i, 1) for i in range(n)], dtype=np.int64)
    return feed


def same_detections(a: list[np.ndarray], b: list[np.ndarray], tolerance: float = SIMPLIFY_TOLERANCE) -> bool:
    """Equal counts and equal valid rows (within ``tolerance``) for every output."""
    if not np.array_equal(a[0], b[0]):
        return False
    for out_a, out_b in zip(a[1:], b[1:], strict=True):
        for image, count in enumerate(a[0]):
            rows_a, rows_b = out_a[image, : int(count)], out_b[image, : int(count)]
            if rows_a.shape != rows_b.shape:
                return False
            if (
                rows_a.size
                and np.abs(rows_a.astype(np.float64) - rows_b.astype(np.float64)).max() > tolerance
            ):
                return False
    return True


def simplify(
    model: onnx.ModelProto, deploy: DeployRCNN, flavour: str, batch: int | str
) -> tuple[onnx.ModelProto, str]:
    """onnxslim's simplification, kept only when it leaves the detections unchanged."""
    import onnxslim

    before_plugins = len(plugin_nodes(model))
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            slim = onnxslim.slim(model)
    except Exception as exc:  # onnxslim failing is not fatal: the unsimplified graph is valid
        return model, f"onnxslim failed ({type(exc).__name__}: {str(exc)[:120]}); kept the unsimplified graph"
    if not isinstance(slim, onnx.ModelProto):
        return model, "onnxslim returned nothing; kept the unsimplified graph"
    if len(plugin_nodes(slim)) != before_plugins:
        return model, "onnxslim changed the plugin nodes; kept the unsimplified graph"
    original, simplified = session_for(model, flavour), session_for(slim, flavour)
    if original is None or simplified is None:
        return slim, "simplified; plugin CPU ops unavailable, so checked structurally only"
    feed = probe_feed(deploy, batch)
    if not same_detections(original.run(None, feed), simplified.run(None, feed)):
        return model, "onnxslim changed the detections; kept the unsimplified graph"
    return slim, "simplified; detections unchanged on a probe batch"


def export_onnx(
    deploy: DeployRCNN,
    path: str | Path,
    config: dict[str, Any],
    *,
    flavour: str = "portable",
    batch: int | str = 1,
    do_simplify: bool = True,
    step: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export one flavour to ``path`` with ``config`` (see ``metadata.build_config``) attached."""
    say = step or (lambda _msg: None)
    start = time.perf_counter()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    say(f"{flavour}: tracing with torch.onnx.export(dynamo=True)")
    model = trace_to_onnx(deploy, flavour, batch)
    say(f"{flavour}: onnx.checker and shape inference")
    model = check_and_infer(model)
    notes: list[str] = []
    simplified = False
    if do_simplify:
        say(f"{flavour}: simplifying with onnxslim and checking detections")
        candidate, note = simplify(model, deploy, flavour, batch)
        simplified = candidate is not model
        model = check_and_infer(candidate) if simplified else model
        notes.append(note)
    if flavour == "tensorrt" and not plugin_nodes(model):
        raise ExportError("the TensorRT-flavour graph has no plugin nodes; the op translation did not apply")
    metadata.attach(model, config)
    onnx.save(model, str(path))
    return ExportResult(
        flavour=flavour,
        path=path,
        seconds=time.perf_counter() - start,
        nodes=len(model.graph.node),
        size_bytes=path.stat().st_size,
        outputs=[o.name for o in model.graph.output],
        simplified=simplified,
        notes=notes,
    )
