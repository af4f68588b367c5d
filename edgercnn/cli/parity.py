"""Detection-level parity: does the exported model detect what torchvision detects?

Runs torchvision eager and each candidate (the deploy graph, the portable ONNX, the TensorRT-flavour
ONNX through the plugins' CPU kernels) on the same images and compares detections
(``edgercnn.export.parity``).
"""

from __future__ import annotations

import argparse
import json
import sys

from edgercnn.cli.args import add_model_options, parse_size, source_size_arg
from edgercnn.export.model_source import resolve_source
from edgercnn.export.parity import (
    CANDIDATES,
    DEFAULT_IMAGES,
    format_report,
    load_images,
    parity_report,
    to_source_size,
)
from edgercnn.runtime.errors import UsageError
from edgercnn.runtime.validators import (
    existing_dir_arg,
    existing_file_arg,
    non_negative_int_arg,
    output_dir_arg,
    positive_int_arg,
)  # fmt: skip


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_options(p)
    p.add_argument(
        "--images", type=existing_dir_arg, help="folder of images (default: the synthetic validation split)"
    )
    p.add_argument(
        "--coco", type=existing_file_arg, help="COCO annotation JSON (gives AP); images from --image-dir"
    )
    p.add_argument(
        "--image-dir", type=existing_dir_arg, help="folder of the --coco images (default: next to the JSON)"
    )
    p.add_argument(
        "--limit",
        type=positive_int_arg,
        default=DEFAULT_IMAGES,
        help=f"images to use (default {DEFAULT_IMAGES})",
    )
    p.add_argument("--seed", type=non_negative_int_arg, default=0, help="synthetic set seed")
    p.add_argument(
        "--source-size",
        type=source_size_arg,
        help="WIDTHxHEIGHT the graph is exported for (default: first image's)",
    )
    p.add_argument(
        "--candidates",
        default="deploy,portable,tensorrt",
        help="comma-separated subset of " + ",".join(CANDIDATES),
    )
    p.add_argument("--batch", type=positive_int_arg, default=1)
    p.add_argument(
        "--onnx-dir", type=output_dir_arg, help="reuse/keep exported files here (default: a temporary folder)"
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    names = [c.strip() for c in args.candidates.split(",") if c.strip()]
    unknown = [c for c in names if c not in CANDIDATES]
    if unknown:
        raise UsageError(f"unknown candidate(s) {unknown}; choose from {', '.join(CANDIDATES)}")
    if "tensorrt" in names:
        try:
            import edgercnn.runtime.plugin_ops  # noqa: F401
        except ImportError:
            print("parity: runtime.plugin_ops missing; skipping the tensorrt candidate", file=sys.stderr)
            names.remove("tensorrt")
    source = resolve_source(args)
    from edgercnn.export import checkpoint
    from edgercnn.export.refmodels import architectures

    model = architectures.build_model(source.architecture, source.num_classes, **source.constructor_kwargs)
    if source.checkpoint is not None:
        checkpoint.load_into(model, source.checkpoint)
    images, gt = load_images(args)
    size = parse_size(args.source_size) if args.source_size else None
    resized = to_source_size(images, size)
    if gt and resized[0].shape[:2] != images[0].shape[:2]:
        gt = None  # ground truth is in the original pixels; AP would compare the wrong geometry
    report = parity_report(model, resized, candidates=names, batch=args.batch, gt=gt, work_dir=args.onnx_dir)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0
