"""Build an INT8 calibration set (PNG images + manifest.json) from images or videos.

Frames are sampled evenly from each video, near-duplicates dropped, and the set written with a
manifest (``edgercnn.runtime.calibration``); ``edgercnn quantize`` and ``edgercnn build`` read it.
"""

from __future__ import annotations

import argparse

from ..calibration import build_calibration_set
from ..validators import non_negative_float_arg, output_dir_arg, positive_int_arg


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sources", nargs="+", help="image files, folders, glob patterns or video files")
    parser.add_argument(
        "--out", "-o", type=output_dir_arg, required=True, help="output folder (must not hold a set already)"
    )
    parser.add_argument(
        "--count", type=positive_int_arg, default=64, help="number of images to keep (default 64)"
    )
    parser.add_argument(
        "--frames-per-video",
        type=positive_int_arg,
        default=None,
        help="frames sampled evenly per video before deduplication",
    )
    parser.add_argument(
        "--dedup-threshold",
        type=non_negative_float_arg,
        default=2.0,
        help="drop a frame whose 64x64 grey thumbnail differs from a kept one by less than this "
        "mean absolute grey level (0 keeps everything; default 2.0)",
    )


def run(args: argparse.Namespace) -> int:
    result = build_calibration_set(
        args.sources, args.out, args.count, args.frames_per_video, args.dedup_threshold
    )
    print(
        f"wrote {len(result.items)} images to {result.directory} "
        f"({result.considered} considered, {result.duplicates} near-duplicates dropped)"
    )
    return 0
