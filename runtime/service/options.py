"""What the service and each stream are told to do, validated once whether it came from flags or a file."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..validators import check_number, check_score

__all__ = [
    "OUTPUT_KINDS", "ReconnectPolicy", "ServiceOptions", "StreamSpec", "check_number", "check_options",
    "check_score",
]  # fmt: skip

OUTPUT_KINDS = ("jsonl", "coco", "images", "video")


@dataclass(frozen=True)
class StreamSpec:
    """One stream: a unique ``name`` (it names the stream's outputs), where it comes from, its filters.

    ``score`` and ``classes`` of None use the service-wide values; ``outputs`` lists which of
    ``OUTPUT_KINDS`` this stream writes.
    """

    name: str
    url: str
    score: float | None = None
    classes: tuple[str, ...] | None = None
    outputs: tuple[str, ...] = OUTPUT_KINDS


@dataclass(frozen=True)
class ReconnectPolicy:
    """How a live stream that ends, errors or stalls is reopened.

    Defaults suit RTSP cameras: a first retry after half a second, doubling to at most 2 s (so a
    camera that comes back is read again within a few seconds), forever (``attempts`` 0) because a
    camera that reboots for ten minutes should still be read when it returns. ``stall_s``: a
    stream that delivers nothing for this long is treated as lost (it is also the open timeout).
    """

    initial_s: float = 0.5
    max_s: float = 2.0
    factor: float = 2.0
    attempts: int = 0  # consecutive failed opens before giving up; 0 = never give up
    stall_s: float = 10.0

    def delay(self, failures: int) -> float:
        """Seconds to wait before the next try after ``failures`` consecutive failures (>= 1)."""
        return min(self.max_s, self.initial_s * self.factor ** max(0, failures - 1))


@dataclass(frozen=True)
class ServiceOptions:
    """Service-wide settings: batching deadline, reconnects, metrics endpoint, JSONL rotation."""

    batch: int | None = None  # frames per inference call; None: the graph's batch, or one per stream
    batch_timeout_s: float = 0.05  # longest a waiting frame is held for the others of its batch
    reconnect: ReconnectPolicy = field(default_factory=ReconnectPolicy)
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None  # None: no HTTP endpoint
    rotate_mb: float | None = None
    rotate_minutes: float | None = None
    fps: float | None = None  # written videos' rate; None: each source's own rate


# Setting -> how a message names it; the command line passes its flag names instead.
SETTING_NAMES: dict[str, str] = {
    "batch": "batch",
    "batch_timeout": "batch timeout",
    "initial_s": "reconnect initial delay",
    "max_s": "reconnect max delay",
    "factor": "reconnect factor",
    "attempts": "reconnect attempts",
    "stall_s": "stall timeout",
    "metrics_port": "metrics port",
    "rotate_mb": "rotate size (MB)",
    "rotate_minutes": "rotate interval (minutes)",
    "fps": "fps",
}


def check_options(options: ServiceOptions, names: Mapping[str, str] = SETTING_NAMES) -> ServiceOptions:
    """Every service-wide value in range; ``names`` says what each message calls the setting."""
    name = {**SETTING_NAMES, **names}
    policy = options.reconnect
    if options.batch is not None:
        check_number(options.batch, name["batch"], low=1, integer=True)
    check_number(options.batch_timeout_s, name["batch_timeout"], low=0.0)
    check_number(policy.initial_s, name["initial_s"], low=0.0, open_low=True)
    check_number(policy.max_s, name["max_s"], low=policy.initial_s)
    check_number(policy.factor, name["factor"], low=1.0)
    check_number(policy.attempts, name["attempts"], low=0, integer=True)
    check_number(policy.stall_s, name["stall_s"], low=0.0, open_low=True)
    if options.metrics_port is not None:
        check_number(options.metrics_port, name["metrics_port"], low=0, high=65535, integer=True)
    if options.rotate_mb is not None:
        check_number(options.rotate_mb, name["rotate_mb"], low=0.0, open_low=True)
    if options.rotate_minutes is not None:
        check_number(options.rotate_minutes, name["rotate_minutes"], low=0.0, open_low=True)
    if options.fps is not None:
        check_number(options.fps, name["fps"], low=0.0, high=1000.0, open_low=True)
    return options
