"""Fit a small reference R-CNN on the synthetic set on the CPU, then write its weights and card.

The bundled models in models/ came from this command; each card records the exact command line.
"""

from __future__ import annotations

import argparse
import json

from edgercnn.export.refmodels.architectures import ARCHITECTURES
from edgercnn.export.refmodels.training import SUBSET_SIZE, train


def add_arguments(p: argparse.ArgumentParser) -> None:
    refs = [n for n, s in ARCHITECTURES.items() if s.reference]
    p.add_argument("--arch", required=True, choices=refs)
    p.add_argument("--data", required=True, help="directory written by 'edgercnn synth'")
    p.add_argument("--data-seed", type=int, default=0, help="seed the data set was generated with")
    p.add_argument("--out", default="models", help="where <arch>.pth and <arch>.json go")
    p.add_argument("--work", default=None, help="checkpoint directory (default: <out>/../.train_work)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--iters", type=int, default=2000, help="optimizer steps")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=2e-3, help="AdamW peak learning rate")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=150)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--checkpoint-every", type=int, default=250)
    p.add_argument(
        "--max-minutes", type=float, default=None, help="time budget: the schedule ends by then (see card)"
    )
    p.add_argument("--resume", action="store_true", help="continue from the work directory's checkpoint")
    p.add_argument(
        "--subset-images", type=int, default=SUBSET_SIZE, help="val images of the card's subset AP"
    )
    p.add_argument("--val-limit", type=int, default=None, help="evaluate on the first N val images only")
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
