"""From arguments (or a fleet file) to a running service: checked first, then the model, then outputs.

``plan_run`` checks every argument and the fleet file before anything heavy loads, so a typo costs
a second, not a model load; ``build_service`` then needs the model (class names) to resolve the
filters, opens the outputs and the metrics endpoint, and creates one reader per source.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..postprocess import class_ids
from ..sources import LiveSource, Source, SourceProblem, expand_source
from .fleet import load_fleet
from .loop import Service, StreamFilter
from .metrics import MetricsServer, ServiceMetrics
from .options import ReconnectPolicy, ServiceOptions, StreamSpec, check_number, check_options, check_score
from .outputs import StreamOutputs, run_folder, unique_names
from .readers import Board, FileReader, LiveReader, Reader

DEFAULT_SCORE = 0.5


@dataclass
class ReaderPlan:
    """One reader to start: a live spec, or the file sources of one ``--source`` / fleet stream."""

    name: str
    stream: StreamSpec
    live: LiveSource | None = None
    files: list[tuple[str, Source]] = field(default_factory=list)


@dataclass
class RunPlan:
    """Everything ``edgercnn run`` was asked to do, checked, before the model is opened."""

    readers: list[ReaderPlan]
    options: ServiceOptions
    folder: Path | None
    kinds: set[str]
    with_masks: bool
    score: float
    classes: tuple[str, ...] | None
    max_frames: int | None = None
    problems: int = 0
    notes: list[str] = field(default_factory=list)


def _flag_options(args: argparse.Namespace, base: ServiceOptions) -> ServiceOptions:
    """Explicit flags win over the fleet file's ``[service]``, which wins over the defaults."""
    policy = base.reconnect
    for flag, key in (
        ("stall_timeout", "stall_s"),
        ("reconnect_initial", "initial_s"),
        ("reconnect_max", "max_s"),
        ("reconnect_attempts", "attempts"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            policy = dataclasses.replace(policy, **{key: value})
    if args.reconnect_initial is not None and args.reconnect_max is None and policy.max_s < policy.initial_s:
        policy = dataclasses.replace(policy, max_s=policy.initial_s)
    changes: dict[str, Any] = {"reconnect": policy}
    for flag, key in (
        ("batch", "batch"),
        ("metrics_port", "metrics_port"),
        ("metrics_host", "metrics_host"),
        ("rotate_mb", "rotate_mb"),
        ("rotate_minutes", "rotate_minutes"),
        ("fps", "fps"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            changes[key] = value
    if args.batch_timeout_ms is not None:
        check_number(args.batch_timeout_ms, "--batch-timeout-ms", low=0.0)
        changes["batch_timeout_s"] = args.batch_timeout_ms / 1000.0
    return dataclasses.replace(base, **changes)


# What the command line calls each service setting, so that a message names the flag the user typed.
FLAG_NAMES = {
    "batch": "--batch",
    "batch_timeout": "--batch-timeout-ms",
    "initial_s": "--reconnect-initial",
    "max_s": "--reconnect-max",
    "attempts": "--reconnect-attempts",
    "stall_s": "--stall-timeout",
    "metrics_port": "--metrics-port",
    "rotate_mb": "--rotate-mb",
    "rotate_minutes": "--rotate-minutes",
    "fps": "--fps",
}


def _streams_from_sources(specs: list[str]) -> list[StreamSpec]:
    return [StreamSpec(name="", url=spec) for spec in specs]


def plan_run(args: argparse.Namespace) -> RunPlan:
    """Check the arguments and the fleet file; expand the sources; choose the run folder.

    Lines about inputs that cannot be read land in ``notes``, said once the model has opened.
    """
    fleet = load_fleet(args.fleet) if args.fleet is not None else None
    if args.score is not None:
        check_score(args.score, "--score")
    for flag in ("threads", "max_frames"):
        value = getattr(args, flag, None)
        if value is not None:
            check_number(value, "--" + flag.replace("_", "-"), low=1, integer=True)
    options = check_options(_flag_options(args, fleet.options if fleet else ServiceOptions()), FLAG_NAMES)
    cli_classes = tuple(c.strip() for c in args.classes.split(",") if c.strip()) if args.classes else None
    score = (
        args.score
        if args.score is not None
        else (fleet.score if fleet and fleet.score is not None else DEFAULT_SCORE)
    )
    classes = cli_classes if cli_classes is not None else (fleet.classes if fleet else None)
    streams = fleet.streams if fleet else _streams_from_sources(args.source)
    enabled = {"jsonl"} | {
        k
        for k, off in (("coco", args.no_coco), ("images", args.no_images), ("video", args.no_video))
        if not off
    }
    plan = RunPlan([], options, None, set(), args.rle, score, classes, args.max_frames)
    expanded: list[tuple[StreamSpec, list[Source]]] = []
    for stream in streams:
        found = []
        for item in expand_source(stream.url):
            if isinstance(item, SourceProblem):
                where = f"{stream.name} ({stream.url})" if stream.name else stream.url
                plan.notes.append(f"error: {where}: {item.message}")
                plan.problems += 1
            else:
                found.append(item)
        if found:
            expanded.append((stream, found))
    # one output name per source; a fleet stream's own name wins for its single source
    flat = [(stream, src) for stream, found in expanded for src in found]
    wanted = [
        stream.name if stream.name and len(found) == 1 else "" for stream, found in expanded for _ in found
    ]
    names = unique_names([src.name for _, src in flat], wanted)
    named = iter(zip(names, flat, strict=True))
    for stream, found in expanded:
        pairs = [next(named) for _ in found]
        outputs = tuple(k for k in stream.outputs if k in enabled)
        stream = dataclasses.replace(stream, outputs=outputs)
        plan.kinds.update(outputs)
        files: list[tuple[str, Source]] = []
        for name, (_, src) in pairs:
            if isinstance(src, LiveSource):
                plan.readers.append(ReaderPlan(name=name, stream=stream, live=src))
            else:
                files.append((name, src))
        if files:
            reader_name = (
                stream.name or files[0][0] if len(files) == 1 else (stream.name or _group_name(stream.url))
            )
            plan.readers.append(ReaderPlan(name=reader_name, stream=stream, files=files))
    _unique_reader_names(plan.readers)
    if args.out is not None:
        plan.folder, note = run_folder(args.out)
        if note:
            plan.notes.append(note)
    return plan


def _group_name(spec: str) -> str:
    from ..sinks import safe_stem

    return safe_stem(spec.rstrip("/*?[]")) or "files"


def _unique_reader_names(readers: list[ReaderPlan]) -> None:
    seen: set[str] = set()
    for reader in readers:
        base, n = reader.name, 2
        while reader.name in seen:
            reader.name, n = f"{base}-{n}", n + 1
        seen.add(reader.name)


def _filter(stream: StreamSpec, plan: RunPlan, names: tuple[str, ...]) -> StreamFilter:
    classes = stream.classes if stream.classes is not None else plan.classes
    where = f"stream {stream.name}: " if stream.name else ""
    try:
        ids = class_ids(classes, names)
    except UsageError as exc:
        raise UsageError(where + str(exc)) from None
    return StreamFilter(
        score=stream.score if stream.score is not None else plan.score,
        class_ids=None if ids is None else frozenset(int(i) for i in ids),
        outputs=stream.outputs,
    )


class RunningService(Service):
    """The service with what it owns: the outputs and the metrics endpoint, closed together."""

    metrics_server: MetricsServer | None = None

    def problems(self) -> int:
        return sum(r.stats.problems for r in self.readers)

    @contextlib.contextmanager
    def opened(self) -> Iterator[RunningService]:
        try:
            with self.outputs.opened():
                yield self
        finally:
            if self.metrics_server is not None:
                self.metrics_server.close()


def build_service(plan: RunPlan, detector: Any, report: Callable[[str], None]) -> RunningService:
    """Readers, filters, outputs and metrics for ``plan``; the outputs are open when this returns."""
    names = tuple(detector.config.class_names)
    class_ids(plan.classes, names)  # a bad --classes is an error even when no input could be read
    live_count = sum(1 for r in plan.readers if r.live is not None)
    batch = plan.options.batch or detector.batch_size or max(1, live_count)
    board = Board()
    readers: list[Reader] = []
    filters: dict[str, StreamFilter] = {}
    policy: ReconnectPolicy = plan.options.reconnect
    for rp in plan.readers:
        chosen = _filter(rp.stream, plan, names)
        if rp.live is not None:
            readers.append(LiveReader(rp.name, rp.live.spec, policy, board, report))
            filters[rp.name] = chosen
        else:
            readers.append(FileReader(rp.name, rp.files, board, report, capacity=batch))
            for stream, _ in rp.files:
                filters[stream] = chosen
    holder: list[RunningService] = []
    metrics = server = None
    if (
        plan.options.metrics_port is not None
    ):  # before any output exists: a taken port leaves no empty run folder
        metrics = ServiceMetrics(readers, lambda: holder[0].progress())
        server = MetricsServer(metrics, plan.options.metrics_host, plan.options.metrics_port)
    try:
        outputs = StreamOutputs(plan.folder, plan.options, plan.with_masks, plan.kinds)
    except BaseException:
        if server is not None:
            server.close()
        raise
    service = RunningService(
        detector, readers, board, filters, outputs, plan.options, batch, max_frames=plan.max_frames
    )
    holder.append(service)
    service.metrics, service.metrics_server = metrics, server
    if server is not None:
        report(f"metrics on {server.address}/metrics, health on {server.address}/healthz")
    return service
