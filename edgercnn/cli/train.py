"""Fit a small reference R-CNN on the synthetic set on the CPU, then write its weights and card.

The bundled models in models/ came from this command; each card records the exact command line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgercnn.export.refmodels.architectures import ARCHITECTURES
from edgercnn.export.refmodels.training import SUBSET_SIZE, train
from edgercnn.runtime.errors import UsageError
from edgercnn.runtime.validators import (
    check_existing_dir,
    non_negative_float_arg,
    non_negative_int_arg,
    output_dir_arg,
    positive_float_arg,
    positive_int_arg,
    text_arg,
)  # fmt: skip


def check_data_dir(value: str, where: str) -> Path:
    """The data set folder exists; if not, say which command writes one."""
    try:
        return check_existing_dir(value, where)
    except UsageError as exc:
        raise UsageError(f"{exc} (write one with 'edgercnn synth --out DIR')") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    refs = [n for n, s in ARCHITECTURES.items() if s.reference]
    p.add_argument("--arch", required=True, choices=refs)
    p.add_argument(
        "--data", type=text_arg(check_data_dir), required=True, help="directory written by 'edgercnn synth'"
    )
    p.add_argument(
        "--data-seed", type=non_negative_int_arg, default=0, help="seed the data set was generated with"
    )
    p.add_argument("--out", type=output_dir_arg, default="models", help="where <arch>.pth and <arch>.json go")
    p.add_argument(
        "--work",
        type=output_dir_arg,
        default=None,
        help="checkpoint directory (default: <out>/../.train_work)",
    )
    p.add_argument("--seed", type=non_negative_int_arg, default=0)
    p.add_argument("--iters", type=positive_int_arg, default=2000, help="optimizer steps")
    p.add_argument("--batch-size", type=positive_int_arg, default=4)
    p.add_argument("--lr", type=positive_float_arg, default=2e-3, help="AdamW peak learning rate")
    p.add_argument("--weight-decay", type=non_negative_float_arg, default=1e-4)
    p.add_argument("--warmup", type=non_negative_int_arg, default=150)
    p.add_argument("--threads", type=positive_int_arg, default=2)
    p.add_argument("--checkpoint-every", type=positive_int_arg, default=250)
    p.add_argument(
        "--max-minutes",
        type=positive_float_arg,
        default=None,
        help="time budget: the schedule ends by then (see card)",
    )
    p.add_argument("--resume", action="store_true", help="continue from the work directory's checkpoint")
    p.add_argument(
        "--subset-images",
        type=positive_int_arg,
        default=SUBSET_SIZE,
        help="val images of the card's subset AP",
    )
    p.add_argument(
        "--val-limit", type=positive_int_arg, default=None, help="evaluate on the first N val images only"
    )
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    card = train(args, args.argv)
    print(
        json.dumps(
            {
                "val_ap": card["val_ap"],
                "subset_ap": card["subset"]["ap"],
                "wall_seconds": card["training"]["wall_seconds"],
            },
            indent=2,
        )
    )
    return 0
