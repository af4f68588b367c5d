"""Write the synthetic surveillance set (train/val/calib) as COCO json + JPEGs, and a sample video."""

from __future__ import annotations

import argparse
import json

from edgercnn.export.refmodels.synthdata.dataset import (
    SynthDataError,
    generate_dataset,
    write_calibration_set,
)
from edgercnn.export.refmodels.synthdata.video import write_video
from edgercnn.runtime.errors import UsageError
from edgercnn.runtime.validators import (
    non_negative_int_arg,
    output_dir_arg,
    output_file_arg,
    positive_float_arg,
)  # fmt: skip


def parse_size(text: str) -> tuple[int, int]:
    """``"384x288"`` -> (384, 288); sizes must be multiples of 32 so the models never resize."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 384x288, got {text!r}") from None
    if w < 64 or h < 64 or w % 32 or h % 32:
        raise argparse.ArgumentTypeError(f"size {text!r}: width and height must be multiples of 32, >= 64")
    return w, h


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=output_dir_arg, help="output directory for the data set")
    p.add_argument(
        "--video", type=output_file_arg, help="also (or only) write a sample street video here (.mp4, mp4v)"
    )
    p.add_argument(
        "--calib-out",
        type=output_dir_arg,
        help="also write the calibration split as JPEGs + manifest.json here",
    )
    p.add_argument("--video-seconds", type=positive_float_arg, default=9.0)
    p.add_argument("--video-fps", type=positive_float_arg, default=10.0)
    p.add_argument("--train", type=non_negative_int_arg, default=3000, help="training images")
    p.add_argument("--val", type=non_negative_int_arg, default=300, help="validation images")
    p.add_argument("--calib", type=non_negative_int_arg, default=64, help="calibration images")
    p.add_argument("--seed", type=non_negative_int_arg, default=0)
    p.add_argument("--size", type=parse_size, default=(384, 288), help="WIDTHxHEIGHT (default 384x288)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    if min(args.train, args.val, args.calib) < 0:
        raise UsageError("image counts must be >= 0")
    width, height = args.size
    if args.out is None and args.video is None and args.calib_out is None:
        raise UsageError("give --out DIR, --calib-out DIR and/or --video FILE.mp4")
    if args.calib_out is not None:
        manifest = write_calibration_set(args.calib_out, args.seed, args.calib, width, height)
        print(f"wrote {args.calib} calibration images and {manifest}")
    if args.video is not None:
        try:
            gt = write_video(args.video, args.seed, args.video_seconds, args.video_fps, width, height)
        except OSError as exc:
            raise SynthDataError(f"{args.video}: cannot write the video ({exc})") from exc
        print(f"wrote {args.video} and its ground truth {gt}")
    if args.out is None:
        return 0
    counts = {"train": args.train, "val": args.val, "calib": args.calib}
    try:
        stats = generate_dataset(args.out, counts, args.seed, width, height, progress=not args.no_progress)
    except OSError as exc:
        raise SynthDataError(f"{args.out}: cannot write the data set ({exc})") from exc
    print(json.dumps(stats, indent=2))
    return 0
