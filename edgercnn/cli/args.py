"""Argument groups and value parsers that several build-host verbs share (export, parity)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from edgercnn.runtime.errors import UsageError
from edgercnn.runtime.validators import arg_type, check_number, existing_file_arg, text_arg
from edgercnn.runtime.validators import parse_size as parse_width_height


def parse_size(text: str, where: str = "--source-size") -> tuple[int, int]:
    """``WxH`` -> ``(height, width)`` (the exporter's order), checked by the runtime's one parser."""
    width, height = parse_width_height(text, where)
    return height, width


def parse_batch(text: str, where: str = "--batch") -> int | str:
    """A positive batch, or ``dynamic``."""
    if text == "dynamic":
        return "dynamic"
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise UsageError(f"{where}: must be a positive integer or 'dynamic', got {text!r}")


def _checked_text(parse: Callable[[str, str], object]) -> Callable[[str], str]:
    """A parser ``type=`` that checks the text with ``parse`` and keeps the text: the verbs parse it
    themselves, so a namespace built in Python (not by the parser) is checked the same way."""

    def check(text: str, where: str) -> str:
        parse(text, where)
        return text

    return text_arg(check)


source_size_arg = _checked_text(parse_size)
batch_arg = _checked_text(parse_batch)


def check_num_classes(value: object, where: str) -> int:
    """Classes including the background: at least two."""
    return int(check_number(value, where, low=2, integer=True))


num_classes_arg = arg_type(check_num_classes, int)


def add_model_options(p: argparse.ArgumentParser) -> None:
    """--checkpoint/--arch/--card/--num-classes/--class-names/--random-weights (shared with parity)."""
    src = p.add_argument_group("model")
    src.add_argument(
        "--checkpoint", type=existing_file_arg, help="state_dict (.pth); default: the card's weights"
    )
    src.add_argument("--arch", help="architecture name (see export/refmodels/architectures.py)")
    src.add_argument(
        "--card",
        type=existing_file_arg,
        help="model card JSON (models/*.json): architecture, classes, weights",
    )
    src.add_argument(
        "--num-classes", type=num_classes_arg, help="classes including background (default: architecture's)"
    )
    src.add_argument(
        "--class-names", help="comma-separated names, background first (default: card or generic)"
    )
    src.add_argument("--random-weights", action="store_true", help="no checkpoint: random weights (testing)")
