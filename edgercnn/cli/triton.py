"""Write a Triton Inference Server model repository for an exported model.

The python-backend models (image-in detections, the graph's tensors, ensemble pre/post) run this
runtime on the server's CPU or GPU; ``--onnxruntime`` adds the ONNX on Triton's onnxruntime
backend and ``--engine`` a TensorRT engine as ``tensorrt_plan``, each in an ensemble that takes
an encoded image and returns detections. See docs/triton.md for serving it.
"""

from __future__ import annotations

import argparse
import sys

from edgercnn.runtime.errors import UsageError
from edgercnn.runtime.triton.repository import RepositoryOptions, write_repository
from edgercnn.runtime.validators import (
    existing_file_arg,
    non_negative_int_arg,
    output_dir_arg,
    positive_int_arg,
)


def _gpus(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(g) for g in text.split(",") if g.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--gpus {text!r}: expected comma-separated GPU ids, e.g. 0,1"
        ) from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=existing_file_arg, help="the exported ONNX (model.onnx or model.trt.onnx)")
    p.add_argument(
        "--out",
        "-o",
        type=output_dir_arg,
        required=True,
        help="repository folder to create (must be new or empty)",
    )
    p.add_argument("--name", default=None, help="base model name (default: the ONNX file's stem)")
    p.add_argument(
        "--max-batch",
        type=positive_int_arg,
        default=8,
        help="Triton max_batch_size of dynamic-batch graphs and of the image-in model (default 8)",
    )
    p.add_argument(
        "--instances",
        type=positive_int_arg,
        default=1,
        help="model instances per model (instance_group count)",
    )
    p.add_argument(
        "--queue-delay-us",
        type=non_negative_int_arg,
        default=2000,
        help="dynamic batching: how long a request may wait for others (default 2000 us)",
    )
    p.add_argument(
        "--device",
        default="cpu",
        choices=["cpu", "cuda", "auto"],
        help="where the python models run onnxruntime (cuda needs onnxruntime-gpu on the server)",
    )
    p.add_argument(
        "--threads", type=positive_int_arg, default=None, help="onnxruntime threads per python model instance"
    )
    p.add_argument("--onnxruntime", action="store_true", help="add the ONNX on Triton's onnxruntime backend")
    p.add_argument(
        "--engine",
        type=existing_file_arg,
        default=None,
        help="add this TensorRT engine as a tensorrt_plan model",
    )
    p.add_argument("--gpus", type=_gpus, default=(), help="GPU ids for the onnxruntime/tensorrt instances")


def run(args: argparse.Namespace) -> int:
    name = args.name or args.model.name.split(".")[0]
    if not name.replace("_", "").replace("-", "").isalnum():
        raise UsageError(f"--name {name!r}: use letters, digits, '_' and '-' only")
    options = RepositoryOptions(
        name=name,
        max_batch=args.max_batch,
        instances=args.instances,
        queue_delay_us=args.queue_delay_us,
        device=args.device,
        threads=args.threads,
        onnxruntime=args.onnxruntime,
        engine=args.engine,
        gpus=args.gpus,
    )
    models = write_repository(args.model, args.out, options)
    print(f"triton: wrote {args.out} with {len(models)} models: {', '.join(models)}", file=sys.stderr)
    return 0
