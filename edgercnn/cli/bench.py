"""Latency and throughput, models side by side (and torchvision eager with ``--eager``).

The device's bench (``edgercnn.runtime.commands.bench``) plus, on a build host, torchvision's
eager model as one more entry per model: the adapter imports torch only when ``--eager`` is
given, so ``edgercnn bench`` stays torch-free on a camera.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgercnn.runtime.commands import bench as device_bench
from edgercnn.runtime.errors import UsageError
from edgercnn.runtime.validators import existing_file_arg


def add_arguments(parser: argparse.ArgumentParser) -> None:
    device_bench.add_arguments(parser)
    parser.add_argument(
        "--eager",
        type=existing_file_arg,
        default=None,
        help="also run torchvision eager from this checkpoint or model card",
    )


def eager_entry(
    args: argparse.Namespace, model: Path, config: Any
) -> tuple[dict[str, Any], Callable[[], Any]]:
    """torchvision eager on the same frame, with the same stages as the runtime's entries."""
    try:
        from edgercnn.export import eager_bench
    except ModuleNotFoundError as exc:
        raise UsageError(f"--eager needs torch and the export extra ({exc.name!r} is missing)") from exc

    def open_eager() -> Any:
        print(f"bench: {args.eager} on torchvision eager ...", file=sys.stderr)
        return eager_bench.EagerRunner(args.eager, config, threads=args.threads, score_threshold=args.score)

    meta = {"name": f"{Path(args.eager).name} [torchvision eager]", "model": str(args.eager),
            "backend": "torchvision-eager", "precision": "fp32", "flavour": "eager"}  # fmt: skip
    return meta, open_eager


def run(args: argparse.Namespace) -> int:
    return device_bench.run(args, companions=[eager_entry] if args.eager else [])
