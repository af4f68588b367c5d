"""Build a TensorRT engine (and its .json sidecar) from an ONNX file written by 'edgercnn export' or
'edgercnn quantize'. Run it on the device that will run the engine.

Runs with the base install plus TensorRT (no torch, no onnx). Where TensorRT or a GPU is missing
it prints the plan and the command to run on the target and exits 1; ``--plan-only`` prints the
plan anywhere and exits 0. ``--check-parity IMAGES`` compares the new engine's detections with
onnxruntime's on the same images (on the target).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..backends.tensorrt.builder import EngineResult, build_engine, engine_plan_or_command
from ..backends.tensorrt.plan import PRECISIONS, BatchProfile, EngineOptions
from ..errors import Interrupted
from ..validators import (
    existing_dir_arg,
    existing_file_arg,
    non_negative_int_arg,
    opt_level_arg,
    output_file_arg,
    positive_int_arg,
)  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "onnx", type=existing_file_arg, help="model.onnx, model.trt.onnx, model.fp16.onnx or a Q/DQ ONNX"
    )
    parser.add_argument(
        "--engine", type=output_file_arg, help="output engine (default: <onnx stem>.<precision>.engine)"
    )
    parser.add_argument("--precision", choices=PRECISIONS, default="fp16", help="default fp16")
    parser.add_argument(
        "--calib-cache", type=Path, help="TensorRT 10 INT8: calibration cache to read (or write)"
    )
    parser.add_argument(
        "--calib-images", type=existing_dir_arg, help="TensorRT 10 INT8: calibrate from this image folder"
    )
    parser.add_argument(
        "--workspace-mb", type=positive_int_arg, help="builder workspace limit in MB (default: TensorRT's)"
    )
    parser.add_argument(
        "--opt-level", type=opt_level_arg, default=3, help="builder optimization level 0-5 (default 3)"
    )
    parser.add_argument(
        "--timing-cache", type=Path, help="timing cache file (default: timing.cache beside it)"
    )
    parser.add_argument(
        "--dla-core", type=non_negative_int_arg, help="Jetson DLA core (GPU fallback for other layers)"
    )
    parser.add_argument("--batch", type=BatchProfile.parse, help="dynamic-batch profile N or MIN:OPT:MAX")
    parser.add_argument(
        "--plugin-lib", type=existing_file_arg, help="libedgercnn_plugins.so (TensorRT-flavour ONNX)"
    )
    parser.add_argument(
        "--device", type=non_negative_int_arg, default=0, help="CUDA device index (default 0)"
    )
    parser.add_argument("--plan-only", action="store_true", help="print what would be done, build nothing")
    parser.add_argument(
        "--check-parity",
        type=existing_dir_arg,
        metavar="IMAGES",
        help="after building, compare with onnxruntime",
    )
    parser.add_argument(
        "--parity-onnx",
        type=Path,
        help="ONNX that onnxruntime runs for --check-parity (default: the built one; the portable "
        "model.onnx avoids needing the CPU plugin ops)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")


def options_from_args(args: argparse.Namespace) -> EngineOptions:
    return EngineOptions(
        precision=args.precision,
        calib_cache=args.calib_cache,
        calib_images=args.calib_images,
        workspace_mb=args.workspace_mb,
        opt_level=args.opt_level,
        timing_cache=args.timing_cache,
        dla_core=args.dla_core,
        batch=args.batch,
        plugin_lib=args.plugin_lib,
        device=args.device,
    )


def _as_json(result: EngineResult) -> str:
    return json.dumps(
        {
            "built": result.built,
            "engine": str(result.engine_path) if result.engine_path else None,
            "sidecar": str(result.sidecar_path) if result.sidecar_path else None,
            "seconds": round(result.seconds, 1),
            "plan": result.plan,
            "command": result.command,
            "reason": result.reason,
        },
        indent=2,
    )


def run(args: argparse.Namespace) -> int:
    try:
        return _build(args)
    except KeyboardInterrupt:
        raise Interrupted("interrupted; no engine written") from None


def _build(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    if args.plan_only:
        print(engine_plan_or_command(args.onnx, options, args.engine))
        return 0
    result = build_engine(args.onnx, args.engine, options)
    if args.json:
        print(_as_json(result))
    else:
        print("\n".join(result.plan) if not result.built else result.summary())
    if not result.built:
        if args.json:
            print(result.summary(), file=sys.stderr)
        return 1
    if args.check_parity is not None:
        from ..backends.tensorrt.parity import check_engine_parity

        reference = args.parity_onnx or args.onnx
        report = check_engine_parity(result.engine_path, reference, args.check_parity, options.plugin_lib)
        print(report.text())
        return 0 if report.passed else 4
    return 0
