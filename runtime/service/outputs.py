"""Per-stream outputs in a run folder that never overwrites what a user already has.

Every stream has a unique name (from the fleet file, or derived from its source with the parent
folder or a counter added on a clash), and that name names its annotated images and video, so two
``frame.jpg`` from different folders or two cameras with the same URL path never overwrite each
other. An ``--out`` that already holds anything gets a sibling run folder (``out-2``, ``out-3``...)
and a note saying so; nothing there is truncated.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..detections import Detections
from ..errors import SinkError, UsageError
from ..sinks import CocoResultsSink, ImageSink, JsonlSink, SinkSet, VideoSink, safe_stem, signals_held
from ..sources import Frame
from .options import ServiceOptions


def unique_names(sources: Sequence[str], wanted: Sequence[str] | None = None) -> list[str]:
    """A distinct output name per source: its stem, then ``parent_stem``, then ``stem-2``, ``-3``..."""
    wanted = wanted or [""] * len(sources)
    names: list[str] = []
    taken = {w for w in wanted if w}
    stems = [safe_stem(s) for s in sources]
    for i, (source, stem) in enumerate(zip(sources, stems, strict=True)):
        if wanted[i]:
            names.append(wanted[i])
            continue
        name = stem
        clashes = stems.count(stem) > 1 or name in taken
        if clashes and "://" not in source and not source.isdigit():
            parent = safe_stem(Path(source).parent.name) if Path(source).parent.name else ""
            name = f"{parent}_{stem}" if parent and parent != "source" else stem
        base, n = name, 2
        while name in taken:
            name, n = f"{base}-{n}", n + 1
        taken.add(name)
        names.append(name)
    return names


def run_folder(out: Path) -> tuple[Path, str | None]:
    """The folder this run writes to and, when it is not ``out`` itself, a note saying why."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file, not a folder")
    if not out.exists() or not any(out.iterdir()):
        return out, None
    n = 2
    while True:
        candidate = out.with_name(f"{out.name}-{n}")
        if not candidate.exists():
            return candidate, f"note: {out} already holds results; this run writes to {candidate}"
        n += 1


class StreamOutputs:
    """The run's sinks; each frame goes to the kinds its stream asked for and that fit the frame.

    One JSONL (with a ``stream`` field per line, rotated if asked) and one COCO results file for
    the run; annotated stills go to ``images/<stream>.jpg``, video and live frames to
    ``videos/<stream>.annotated.mp4``.
    """

    def __init__(
        self, folder: Path | None, options: ServiceOptions, with_masks: bool, kinds: set[str]
    ) -> None:
        self.folder = folder
        self.sinks: dict[str, Any] = {}
        self._set = SinkSet([])
        if folder is None:
            return
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkError(f"--out {folder}: cannot create the folder ({exc.strerror or exc})") from None
        rotate_bytes = None if options.rotate_mb is None else int(options.rotate_mb * 1e6)
        rotate_seconds = None if options.rotate_minutes is None else options.rotate_minutes * 60.0
        makers = {
            "jsonl": lambda: JsonlSink(folder / "detections.jsonl", with_masks, rotate_bytes, rotate_seconds),
            "coco": lambda: CocoResultsSink(folder / "results.coco.json"),
            "images": lambda: ImageSink(folder / "images"),
            "video": lambda: VideoSink(folder / "videos", fps=options.fps),
        }
        try:
            for kind in ("jsonl", "coco", "images", "video"):
                if kind in kinds:
                    self.sinks[kind] = makers[kind]()
                    self._set.sinks.append(self.sinks[kind])
        except BaseException:
            self._set.close()
            raise

    def wants_annotated(self, kinds: Sequence[str]) -> bool:
        return any(k in self.sinks for k in kinds if k in ("images", "video"))

    def write(
        self, frame: Frame, dets: Detections, annotated: np.ndarray | None, kinds: Sequence[str]
    ) -> None:
        still = frame.position_s is None and not frame.live
        with signals_held():
            for kind in kinds:
                sink = self.sinks.get(kind)
                if sink is None or (kind == "images" and not still) or (kind == "video" and still):
                    continue
                sink.write(frame, dets, annotated)

    def stream_finished(self, stream: str) -> None:
        if "video" in self.sinks:
            self.sinks["video"].finish(stream)

    def fail(self) -> None:
        self._set.fail()

    def close(self) -> None:
        self._set.close()

    @contextlib.contextmanager
    def opened(self) -> Iterator[StreamOutputs]:
        try:
            yield self
        except BaseException as exc:
            if isinstance(exc, SinkError):
                self.fail()
            with contextlib.suppress(SinkError):  # the first error is the one to report
                self.close()
            raise
        self.close()
