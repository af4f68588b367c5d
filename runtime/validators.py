"""The value checks every command-line flag, fleet setting and Python API argument goes through.

One function per kind of value, raising one ``UsageError`` line that names the flag (or setting, or
parameter) and says what was wrong, so ``--score nan``, ``score = nan`` in a fleet file and
``Detector.open(score_threshold=float("nan"))`` are refused with the same words. ``arg_type`` turns
a check into an argparse ``type=`` so the parser refuses a bad flag before any work starts.
Standard library only: ``runtime/`` runs alone on a camera.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from .errors import UsageError

T = TypeVar("T")

_SIZE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")
MAX_SIDE = 16384  # the largest frame side any command accepts (and OpenCV decodes quickly)


def check_number(
    value: object,
    where: str,
    *,
    low: float,
    high: float = math.inf,
    integer: bool = False,
    open_low: bool = False,
) -> float:
    """A finite number in range, or one ``UsageError`` line naming ``where``; bools are not numbers."""
    kind = "an integer" if integer else "a number"
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (integer and not isinstance(value, int))
    ):
        raise UsageError(f"{where}: must be {kind}, got {value!r}")
    if not math.isfinite(value) or value < low or value > high or (open_low and value == low):
        bound = f"> {low:g}" if open_low else f">= {low:g}"
        bound += "" if high == math.inf else f" and <= {high:g}"
        raise UsageError(f"{where}: must be {bound}, got {value!r}")
    return value


def check_score(value: object, where: str) -> float:
    """A probability (score or IoU threshold): finite, in [0, 1]."""
    return float(check_number(value, where, low=0.0, high=1.0))


def check_positive_int(value: object, where: str) -> int:
    """Counts that must be at least one: batch, frames, runs, images, instances."""
    return int(check_number(value, where, low=1, integer=True))


def check_non_negative_int(value: object, where: str) -> int:
    """Counts where zero means none: warm-up runs, seeds, retries."""
    return int(check_number(value, where, low=0, integer=True))


def check_positive_float(value: object, where: str) -> float:
    """Rates and durations that must be above zero: fps, seconds, learning rates."""
    return float(check_number(value, where, low=0.0, open_low=True))


def check_non_negative_float(value: object, where: str) -> float:
    """Amounts where zero is meaningful: AP drops, timeouts, dedup thresholds."""
    return float(check_number(value, where, low=0.0))


def check_port(value: object, where: str) -> int:
    """A TCP port; 0 asks the system for any free one."""
    return int(check_number(value, where, low=0, high=65535, integer=True))


def check_side(value: object, where: str) -> int:
    """One side of a frame, in pixels."""
    return int(check_number(value, where, low=1, high=MAX_SIDE, integer=True))


def check_opt_level(value: object, where: str) -> int:
    """TensorRT's builder optimization level."""
    return int(check_number(value, where, low=0, high=5, integer=True))


def parse_size(text: str, where: str = "--size") -> tuple[int, int]:
    """``"1280x720"`` -> ``(1280, 720)`` (width, height), each side in 1..MAX_SIDE."""
    match = _SIZE.match(text) if isinstance(text, str) else None
    if not match:
        raise UsageError(f"{where}: must look like WIDTHxHEIGHT (e.g. 1280x720), got {text!r}")
    width, height = int(match.group(1)), int(match.group(2))
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise UsageError(f"{where}: each side must be in 1..{MAX_SIDE}, got {text!r}")
    return width, height


def format_size(width: int, height: int) -> str:
    """The inverse of :func:`parse_size`."""
    return f"{width}x{height}"


def parse_batch_range(text: str, where: str = "--batch") -> tuple[int, int, int]:
    """``"4"`` (fixed) or ``"1:4:8"`` (min:opt:max) with 1 <= MIN <= OPT <= MAX."""
    parts = text.split(":") if isinstance(text, str) else []
    if len(parts) not in (1, 3) or not all(p.strip().isdigit() for p in parts):
        raise UsageError(f"{where}: must be N or MIN:OPT:MAX (e.g. 1:4:8), got {text!r}")
    numbers = [int(p) for p in parts] * (3 if len(parts) == 1 else 1)
    low, opt, high = numbers
    if not 1 <= low <= opt <= high:
        raise UsageError(f"{where}: needs 1 <= MIN <= OPT <= MAX, got {text!r}")
    return low, opt, high


def check_existing_file(value: str | Path, where: str) -> Path:
    """An input file that must exist and be a file (not a folder)."""
    path = Path(value)
    if not path.exists():
        raise UsageError(f"{where}: {path} does not exist")
    if path.is_dir():
        raise UsageError(f"{where}: {path} is a directory, expected a file")
    return path


def check_existing_dir(value: str | Path, where: str) -> Path:
    """An input folder that must exist and be a folder."""
    path = Path(value)
    if not path.exists():
        raise UsageError(f"{where}: {path} does not exist")
    if not path.is_dir():
        raise UsageError(f"{where}: {path} is a file, expected a directory")
    return path


def check_output_dir(value: str | Path, where: str) -> Path:
    """An output folder: may not exist yet, but must not be a file, and its parent must be writable."""
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{where}: {path} is a file, expected a directory")
    parent = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    if not parent.is_dir():
        raise UsageError(f"{where}: {parent} is a file, so {path} cannot be created")
    return path


def check_output_file(value: str | Path, where: str) -> Path:
    """An output file: not a folder, inside a folder that exists or can be made."""
    path = Path(value)
    if path.is_dir():
        raise UsageError(f"{where}: {path} is a directory, expected a file name")
    parent = next((p for p in path.parents if p.exists()), Path("."))
    if not parent.is_dir():
        raise UsageError(f"{where}: {parent} is a file, so {path} cannot be created")
    return path


def arg_type(
    check: Callable[[object, str], T], convert: Callable[[str], object] = float
) -> Callable[[str], T]:
    """An argparse ``type=`` from a check: the text is converted, then checked; argparse adds the flag.

    The error says ``argument --score: must be >= 0 and <= 1, got 'nan'``, the same words a fleet
    file or the Python API gets for the same value.
    """

    def parse(text: str) -> T:
        try:
            value = convert(text)
        except ValueError:
            kind = "an integer" if convert is int else "a number"
            raise argparse.ArgumentTypeError(f"must be {kind}, got {text!r}") from None
        try:
            return check(value, "value")
        except UsageError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix("value: ")) from None

    parse.__name__ = check.__name__.removeprefix("check_")
    return parse


def text_arg(check: Callable[[str, str], T]) -> Callable[[str], T]:
    """An argparse ``type=`` from a check that takes the text itself (sizes, ranges, paths)."""
    return arg_type(check, convert=str)  # type: ignore[arg-type]


score_arg = arg_type(check_score)
positive_int_arg = arg_type(check_positive_int, int)
non_negative_int_arg = arg_type(check_non_negative_int, int)
positive_float_arg = arg_type(check_positive_float)
non_negative_float_arg = arg_type(check_non_negative_float)
port_arg = arg_type(check_port, int)
side_arg = arg_type(check_side, int)
opt_level_arg = arg_type(check_opt_level, int)
size_arg = text_arg(parse_size)
batch_range_arg = text_arg(parse_batch_range)
existing_file_arg = text_arg(check_existing_file)
existing_dir_arg = text_arg(check_existing_dir)
output_dir_arg = text_arg(check_output_dir)
output_file_arg = text_arg(check_output_file)
