"""A checkpoint becomes ONNX files (and, where wired in, INT8/FP16 variants and TensorRT engines).

    edgercnn export --checkpoint model.pth --arch fasterrcnn_resnet50_fpn --source-size 1920x1080
    edgercnn export --card models/ref_maskrcnn.json --batch dynamic --input-dtype uint8 --out out/

Steps are printed as they run; a summary table lists the files at the end. Bad input (unknown
architecture, checkpoint for another model, impossible size) gives one line and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from edgercnn.cli.args import add_model_options, batch_arg, parse_batch, parse_size, source_size_arg
from edgercnn.export.deploy.errors import ExportError
from edgercnn.export.deploy.model import DEFAULT_MAX_PROPOSALS
from edgercnn.export.model_source import resolve_source
from edgercnn.runtime.validators import existing_dir_arg, existing_file_arg, output_dir_arg

DEFAULT_OUT = "export_out"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_options(p)
    g = p.add_argument_group("graph")
    g.add_argument(
        "--source-size", type=source_size_arg, help="camera/frame size WIDTHxHEIGHT the graph is exported for"
    )
    g.add_argument("--batch", type=batch_arg, default="1", help="batch size, or 'dynamic' (default 1)")
    g.add_argument("--input-dtype", choices=("float32", "uint8"), default="float32")
    g.add_argument(
        "--keypoint-decode", choices=("host", "graph"), default="host",
        help="Keypoint R-CNN: decode heatmaps in the runtime for the kept detections (default), "
        "or in the graph for every padded row (for consumers of the raw graph outputs)",
    )  # fmt: skip
    g.add_argument(
        "--flavour", default="portable", help="comma-separated: portable,tensorrt (default portable)"
    )
    g.add_argument("--no-simplify", action="store_true", help="skip onnxslim simplification")
    f = p.add_argument_group("Fast R-CNN mode (docs/model-format.md)")
    f.add_argument(
        "--proposals",
        choices=("rpn", "external"),
        default="rpn",
        help="rpn: the model's own RPN (default); external: the graph takes proposals [N, P, 4] and "
        "num_proposals [N] as inputs instead (e.g. motion regions from 'edgercnn run')",
    )
    f.add_argument(
        "--max-proposals",
        type=int,
        default=DEFAULT_MAX_PROPOSALS,
        help=f"P, the padded proposal count of --proposals external (default {DEFAULT_MAX_PROPOSALS})",
    )
    f.add_argument(
        "--roi-op",
        choices=("align", "pool"),
        default="align",
        help="align: torchvision's RoIAlign (default); pool: Fast R-CNN's RoIPool (max per bin)",
    )
    g.add_argument(
        "--out",
        type=output_dir_arg,
        default=Path(DEFAULT_OUT),
        help=f"output directory (default {DEFAULT_OUT})",
    )
    # Engines: runtime/backends/tensorrt/builder.py; INT8/FP16: export/quantize/. See build_extras().
    e = p.add_argument_group("engines and precision")
    e.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp32")
    e.add_argument("--engine", action="store_true", help="also build TensorRT engines (needs TensorRT)")
    e.add_argument("--calib", type=existing_dir_arg, help="calibration images for --precision int8")
    e.add_argument(
        "--plugin-lib", type=existing_file_arg, help="libedgercnn_plugins.so for TensorRT-flavour engines"
    )


class Steps:
    """Numbered step lines with their duration: clear progress without a progress bar's noise."""

    def __init__(self, total: int, stream: Any = None) -> None:
        self.total, self.index, self.stream = total, 0, stream
        self.started = time.perf_counter()

    def __call__(self, message: str) -> None:
        self.index += 1
        elapsed = time.perf_counter() - self.started
        stream = self.stream or sys.stderr
        print(f"[{self.index}/{self.total}] {elapsed:6.1f}s  {message}", file=stream, flush=True)


def summary_table(results: list[Any]) -> str:
    """Markdown-style table of exported files."""
    rows = [("file", "flavour", "size", "nodes", "outputs", "time", "notes")]
    for r in results:
        rows.append(
            (
                str(r.path),
                r.flavour,
                f"{r.size_bytes / 1e6:.1f} MB",
                str(r.nodes),
                ",".join(r.outputs),
                f"{r.seconds:.1f}s",
                "; ".join(r.notes),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |" for row in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _artefact(path: Path, flavour: str, seconds: float, notes: list[str]) -> Any:
    """A derived file (INT8, FP16) as a row of the summary table."""
    from edgercnn.export.onnx_export import ExportResult

    return ExportResult(
        flavour=flavour,
        path=path,
        seconds=seconds,
        nodes=0,
        size_bytes=path.stat().st_size,
        outputs=[],
        simplified=False,
        notes=notes,
    )


def reduced_precision(args: argparse.Namespace, results: list[Any]) -> list[Any]:
    """``--precision fp16|int8``: FP16 ONNX (TensorRT 11 strong typing) or INT8 Q/DQ + calibration cache.

    INT8 is made from the portable file (onnxruntime calibrates it); its Q/DQ placement serves
    TensorRT too, and the calibration cache serves TensorRT 10's implicit INT8 for either flavour.
    """
    extras: list[Any] = []
    if args.precision == "fp16":
        from edgercnn.export.quantize.fp16 import convert_to_fp16

        for r in results:
            started = time.perf_counter()
            out = r.path.with_name(r.path.name.removesuffix(".onnx") + ".fp16.onnx")
            convert_to_fp16(r.path, out)
            extras.append(_artefact(out, f"{r.flavour}-fp16", time.perf_counter() - started, []))
    elif args.precision == "int8":
        if args.calib is None:
            raise ExportError(
                "--precision int8 needs --calib DIR (e.g. calib_data/synth, or 'edgercnn calibrate')"
            )
        from edgercnn.export.quantize.pipeline import QuantizeOptions, quantize_model

        portable = [r for r in results if r.flavour == "portable"]
        if not portable:
            raise ExportError("--precision int8 quantizes the portable ONNX: add 'portable' to --flavour")
        started = time.perf_counter()
        report = quantize_model(portable[0].path, args.calib, portable[0].path.parent, QuantizeOptions())
        print(report.to_markdown(), file=sys.stderr)
        seconds = time.perf_counter() - started
        for name, variant in report.variants.items():
            extras.append(_artefact(variant.path, f"int8-{name}", seconds, [f"layout {variant.layout}"]))
        if report.calibration_cache is not None:
            extras.append(_artefact(report.calibration_cache, "calib-cache", seconds, ["TensorRT 10"]))
    return extras


def build_extras(args: argparse.Namespace, results: list[Any]) -> list[Any]:
    """Reduced precision (``--precision``) and TensorRT engines (``--engine``) from the ONNX files.

    Without TensorRT or a GPU, ``--engine`` prints the exact command that finishes the engine on
    the target instead of failing: every ONNX artefact is complete without it.
    """
    extras = reduced_precision(args, results)
    if args.engine:
        from edgercnn.runtime.backends.tensorrt.builder import EngineBuildError, EngineOptions, build_engine

        plugin_lib = getattr(args, "plugin_lib", None)
        for r in results:
            calib_cache = next((e.path for e in extras if e.flavour == "calib-cache"), None)
            options = EngineOptions(
                precision=args.precision,
                calib_cache=calib_cache,
                calib_images=args.calib,
                plugin_lib=plugin_lib if r.flavour == "tensorrt" else None,
            )
            try:
                outcome = build_engine(r.path, None, options)
            except EngineBuildError as exc:
                raise ExportError(f"{r.path}: {exc}") from None
            print(outcome.summary(), file=sys.stderr)
    return extras


def export_files(args: argparse.Namespace) -> list[Any]:
    flavours = [f.strip() for f in args.flavour.split(",") if f.strip()]
    from edgercnn.export.onnx_export import FILE_NAMES, FLAVOURS

    unknown = [f for f in flavours if f not in FLAVOURS]
    if unknown or not flavours:
        raise ExportError(f"unknown flavour(s) {unknown}; choose from {', '.join(FLAVOURS)}")
    batch = parse_batch(args.batch)
    if args.precision == "int8" and args.proposals == "external":
        raise ExportError(
            "--precision int8 calibrates on images alone; a --proposals external graph also needs "
            "proposals per image, which calibration does not feed yet: export it in fp32 or fp16"
        )
    if args.precision == "int8" and args.calib is None:  # before the export, not after it
        raise ExportError(
            "--precision int8 needs --calib DIR (e.g. calib_data/synth, or 'edgercnn calibrate')"
        )
    source = resolve_source(args)
    steps = Steps(total=3 + len(flavours) * (2 if args.no_simplify else 3))

    steps(f"building {source.architecture}")
    from edgercnn.export import checkpoint, metadata
    from edgercnn.export.deploy import DeployOptions, DeployRCNN
    from edgercnn.export.model_checks import check_finite_outputs
    from edgercnn.export.onnx_export import export_onnx
    from edgercnn.export.refmodels import architectures
    from edgercnn.runtime.files import sha256_file

    model = architectures.build_model(source.architecture, source.num_classes, **source.constructor_kwargs)
    sha = None
    if source.checkpoint is not None:
        steps(f"loading {source.checkpoint} (weights_only=True)")
        checkpoint.load_into(model, source.checkpoint)
        sha = sha256_file(source.checkpoint)
    else:
        steps("random weights (no checkpoint)")
    model.eval()
    if args.source_size:
        height, width = parse_size(args.source_size)
    elif source.source_size:
        height, width = source.source_size
    else:
        height, width = int(model.transform.min_size[-1]), int(model.transform.max_size)
    mode = f", external proposals (P={args.max_proposals})" if args.proposals == "external" else ""
    steps(f"deploy graph for {width}x{height} source, batch {batch}, {args.input_dtype} input{mode}")
    options = DeployOptions(
        height,
        width,
        args.input_dtype,
        args.keypoint_decode,
        proposals=args.proposals,
        max_proposals=args.max_proposals,
        roi_op=args.roi_op,
    )
    deploy = DeployRCNN(model, options).eval()
    check_finite_outputs(deploy, str(source.checkpoint or source.architecture))
    class_names = source.class_names or metadata.default_class_names(deploy.num_classes)
    results = []
    for flavour in flavours:
        config = metadata.build_config(
            deploy,
            builder=source.architecture,
            class_names=class_names,
            keypoint_names=source.keypoint_names,
            batch=batch,
            flavour=flavour,
            checkpoint=str(source.checkpoint) if source.checkpoint else None,
            checkpoint_sha256=sha,
        )
        path = args.out / FILE_NAMES[flavour]
        results.append(
            export_onnx(
                deploy,
                path,
                config,
                flavour=flavour,
                batch=batch,
                do_simplify=not args.no_simplify,
                step=steps,
            )
        )
    results += build_extras(args, results)
    return results


def run(args: argparse.Namespace) -> int:
    print(summary_table(export_files(args)))
    return 0
