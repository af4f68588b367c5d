"""The fleet file: one TOML file that names every stream of a camera box and the service's settings.

A bad file is one line naming the file and the key (``fleet.toml: streams[2].score: must be ...``),
never a traceback, and unknown keys are refused (a misspelt ``scroe`` would otherwise be ignored).
"""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .options import (
    OUTPUT_KINDS,
    ReconnectPolicy,
    ServiceOptions,
    StreamSpec,
    check_number,
    check_score,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# key -> (low, high, integer, low excluded); every [service] key is a number but these two
SERVICE_NUMBERS: dict[str, tuple[float, float, bool, bool]] = {
    "batch": (1, math.inf, True, False),
    "batch_timeout_ms": (0, math.inf, False, False),
    "stall_timeout_s": (0, math.inf, False, True),
    "reconnect_initial_s": (0, math.inf, False, True),
    "reconnect_max_s": (0, math.inf, False, True),
    "reconnect_attempts": (0, math.inf, True, False),
    "metrics_port": (0, 65535, True, False),
    "rotate_mb": (0, math.inf, False, True),
    "rotate_minutes": (0, math.inf, False, True),
    "fps": (0, 1000, False, True),
    "score": (0, 1, False, False),
}
SERVICE_KEYS = (*SERVICE_NUMBERS, "metrics_host", "classes")
STREAM_KEYS = ("name", "url", "score", "classes", "outputs")


@dataclasses.dataclass(frozen=True)
class Fleet:
    """What a fleet file says: the service settings, the default filters, the streams in order."""

    options: ServiceOptions
    streams: list[StreamSpec]
    score: float | None = None
    classes: tuple[str, ...] | None = None


def _unknown(table: dict[str, Any], allowed: Any, where: str) -> None:
    for key in table:
        if key not in allowed:
            raise UsageError(f"{where}{key}: unknown key (known: {', '.join(sorted(allowed))})")


def _classes(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(c, (str, int)) for c in value):
        raise UsageError(f"{where}: must be a non-empty list of class names or ids, got {value!r}")
    return tuple(str(c) for c in value)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"{where}: must be a non-empty string, got {value!r}")
    return value.strip()


def _stream(table: Any, index: int, prefix: str) -> StreamSpec:
    where = f"{prefix}streams[{index}]"
    if not isinstance(table, dict):
        raise UsageError(f"{where}: must be a table ([[streams]]), got {table!r}")
    _unknown(table, STREAM_KEYS, f"{where}.")
    if "url" not in table:
        raise UsageError(f"{where}.url: missing (every stream needs a url, file or camera index)")
    url = _text(table["url"], f"{where}.url")
    name = _text(table.get("name", ""), f"{where}.name") if "name" in table else ""
    if (name and any(c in name for c in "/\\")) or name in (".", ".."):
        raise UsageError(f"{where}.name: must not contain a path separator, got {name!r}")
    score = check_score(table["score"], f"{where}.score") if "score" in table else None
    classes = _classes(table["classes"], f"{where}.classes") if "classes" in table else None
    outputs: tuple[str, ...] = OUTPUT_KINDS
    if "outputs" in table:
        raw = table["outputs"]
        if not isinstance(raw, list) or not all(o in OUTPUT_KINDS for o in raw):
            raise UsageError(f"{where}.outputs: must be a list of {', '.join(OUTPUT_KINDS)}, got {raw!r}")
        outputs = tuple(raw)
    return StreamSpec(name=name, url=url, score=score, classes=classes, outputs=outputs)


def parse_fleet(data: dict[str, Any], prefix: str = "") -> Fleet:
    """A parsed TOML document -> ``Fleet``; ``prefix`` (``'fleet.toml: '``) starts every message."""
    _unknown(data, ("service", "streams"), prefix)
    service = data.get("service", {})
    if not isinstance(service, dict):
        raise UsageError(f"{prefix}service: must be a table ([service])")
    _unknown(service, SERVICE_KEYS, f"{prefix}service.")
    values: dict[str, Any] = {}
    for key, (low, high, integer, open_low) in SERVICE_NUMBERS.items():
        if key in service:
            where = f"{prefix}service.{key}"
            values[key] = check_number(
                service[key], where, low=low, high=high, integer=integer, open_low=open_low
            )
    defaults = ReconnectPolicy()
    policy = ReconnectPolicy(
        initial_s=values.get("reconnect_initial_s", defaults.initial_s),
        max_s=values.get("reconnect_max_s", max(defaults.max_s, values.get("reconnect_initial_s", 0.0))),
        attempts=int(values.get("reconnect_attempts", defaults.attempts)),
        stall_s=values.get("stall_timeout_s", defaults.stall_s),
    )
    if policy.max_s < policy.initial_s:
        raise UsageError(
            f"{prefix}service.reconnect_max_s: must be >= reconnect_initial_s, got {policy.max_s!r}"
        )
    options = ServiceOptions(
        batch=None if "batch" not in values else int(values["batch"]),
        batch_timeout_s=values.get("batch_timeout_ms", ServiceOptions.batch_timeout_s * 1000.0) / 1000.0,
        reconnect=policy,
        metrics_host=_text(service["metrics_host"], f"{prefix}service.metrics_host")
        if "metrics_host" in service
        else ServiceOptions.metrics_host,
        metrics_port=None if "metrics_port" not in values else int(values["metrics_port"]),
        rotate_mb=values.get("rotate_mb"),
        rotate_minutes=values.get("rotate_minutes"),
        fps=values.get("fps"),
    )
    score = values.get("score")
    classes = _classes(service["classes"], f"{prefix}service.classes") if "classes" in service else None
    raw_streams = data.get("streams")
    if not isinstance(raw_streams, list) or not raw_streams:
        raise UsageError(f"{prefix}streams: missing (add at least one [[streams]] table with a url)")
    streams = [_stream(table, i, prefix) for i, table in enumerate(raw_streams)]
    names = [s.name for s in streams if s.name]
    for name in names:
        if names.count(name) > 1:
            raise UsageError(f"{prefix}streams: name {name!r} is used twice (names name the outputs)")
    return Fleet(options=options, streams=streams, score=score, classes=classes)


def load_fleet(path: Path) -> Fleet:
    """Read and check a fleet file; every problem is one ``UsageError`` line naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such fleet file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"{path}: cannot read fleet file ({getattr(exc, 'strerror', None) or exc})"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML ({exc})") from None
    return parse_fleet(data, f"{path}: ")
