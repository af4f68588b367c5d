"""Argument groups and value parsers that several build-host verbs share (export, parity)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgercnn.runtime.errors import UsageError


def parse_size(text: str) -> tuple[int, int]:
    """``WxH`` -> ``(height, width)``."""
    try:
        width, height = (int(v) for v in text.lower().replace(" ", "").split("x"))
    except ValueError:
        raise UsageError(
            f"--source-size must look like WIDTHxHEIGHT (e.g. 1920x1080), got {text!r}"
        ) from None
    return height, width


def parse_batch(text: str) -> int | str:
    if text == "dynamic":
        return "dynamic"
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise UsageError(f"--batch must be a positive integer or 'dynamic', got {text!r}")


def add_model_options(p: argparse.ArgumentParser) -> None:
    """--checkpoint/--arch/--card/--num-classes/--class-names/--random-weights (shared with parity)."""
    src = p.add_argument_group("model")
    src.add_argument("--checkpoint", type=Path, help="state_dict (.pth); default: the card's weights")
    src.add_argument("--arch", help="architecture name (see export/refmodels/architectures.py)")
    src.add_argument(
        "--card", type=Path, help="model card JSON (models/*.json): architecture, classes, weights"
    )
    src.add_argument("--num-classes", type=int, help="classes including background (default: architecture's)")
    src.add_argument(
        "--class-names", help="comma-separated names, background first (default: card or generic)"
    )
    src.add_argument("--random-weights", action="store_true", help="no checkpoint: random weights (testing)")
