"""COCO box / mask / keypoint AP of a model file on a COCO-format set (pycocotools).

Runs the model through the runtime's own ``Detector`` (the path a camera runs), so the figure is
what a deployment gets; the evaluation itself is in ``edgercnn.runtime.evaluate``.
"""

from __future__ import annotations

import argparse
import json

from ..errors import UsageError
from ..evaluate import evaluate_model
from ..validators import existing_dir_arg, existing_file_arg, positive_int_arg


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model", type=existing_file_arg, help="model file (.onnx, or an engine with its sidecar)"
    )
    parser.add_argument(
        "--images",
        type=existing_dir_arg,
        required=True,
        help="folder the annotation's file_name entries are relative to",
    )
    parser.add_argument("--ann", type=existing_file_arg, required=True, help="COCO-format annotation JSON")
    parser.add_argument(
        "--limit", type=positive_int_arg, default=None, help="evaluate only the first N images (by id)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--backend", default="auto", help="runtime backend (auto, onnxruntime, openvino, tensorrt)"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, tensorrt or auto")
    parser.add_argument("--threads", type=positive_int_arg, default=None, help="CPU threads for onnxruntime")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit <= 0:
        raise UsageError("--limit must be positive")
    result = evaluate_model(
        args.model, args.images, args.ann, args.limit, args.backend, args.device, args.threads,
        progress=not args.no_progress,
    )  # fmt: skip
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    print(f"{result.model}: {result.images} images, {result.seconds:.1f} s")
    for iou_type, stats in result.stats.items():
        print(f"  {iou_type:<9} " + "  ".join(f"{k} {v:5.1f}" for k, v in stats.items()))
    return 0
