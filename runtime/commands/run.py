"""Run an exported R-CNN on images, videos, cameras or streams (``edgercnn run``, ``python -m runtime run``).

Torch-free: this is what runs on the camera. Bad inputs get one line each and the run goes on;
outputs are closed properly on Ctrl-C, SIGTERM or an error, so nothing written is lost.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import EdgercnnError, UsageError
from ..stats import STAGES, StageTimes, format_table


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", required=True, help="model.onnx, model.trt.onnx or model.engine (with its .json)"
    )
    p.add_argument(
        "--source",
        required=True,
        nargs="+",
        help="image/video files, folders, globs ('imgs/*.jpg'), camera indices (0), rtsp:// or http:// URLs, "
        "GStreamer pipelines ('... ! appsink')",
    )
    p.add_argument("--out", type=Path, default=None, help="output folder (JSONL, COCO json, annotated media)")
    p.add_argument(
        "--backend", default="auto", help="auto | onnxruntime | tensorrt | triton (--model grpc://host:8001/NAME)"
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | tensorrt")
    p.add_argument("--threads", type=int, default=None, help="inference threads (default: the library's)")
    p.add_argument("--score", type=float, default=0.5, help="minimum score to keep (default 0.5)")
    p.add_argument("--classes", default=None, help="comma-separated class names or ids to keep")
    p.add_argument("--batch", type=int, default=None, help="frames per inference call (file sources)")
    p.add_argument("--show", action="store_true", help="show annotated frames in a window (needs a display)")
    p.add_argument("--no-images", action="store_true", help="do not write annotated images")
    p.add_argument("--no-video", action="store_true", help="do not write annotated videos")
    p.add_argument("--no-coco", action="store_true", help="do not write the COCO results json")
    p.add_argument("--rle", action="store_true", help="add mask RLEs to the JSONL (needs pycocotools)")
    p.add_argument("--fps", type=float, default=None, help="frame rate of written videos (default: 25)")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _display_available() -> str | None:
    """None if a window can be shown, else why not."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return "no display (DISPLAY / WAYLAND_DISPLAY not set)"
    import cv2

    info = cv2.getBuildInformation()
    if "GUI:" in info and "GUI:                           NONE" in info:
        return "this OpenCV build has no GUI (opencv-python-headless); install opencv-python"
    return None


def _quiet_opencv() -> None:
    """Our one-line problem reports replace OpenCV's and FFmpeg's own multi-line warnings."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    import cv2

    with contextlib.suppress(AttributeError):
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C so that outputs are closed."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Terminated()


def _make_sinks(args: argparse.Namespace) -> Any:
    from ..sinks import CocoResultsSink, ImageSink, JsonlSink, SinkSet, VideoSink

    if args.out is None:
        return SinkSet([])
    out: Path = args.out
    sinks: list[Any] = [JsonlSink(out / "detections.jsonl", with_masks=args.rle)]
    if not args.no_coco:
        sinks.append(CocoResultsSink(out / "results.coco.json"))
    if not args.no_images:
        sinks.append(_ImagesOnly(ImageSink(out / "images")))
    if not args.no_video:
        sinks.append(_VideosOnly(VideoSink(out / "videos", fps=args.fps or 25.0)))
    return SinkSet(sinks)


class _ImagesOnly:
    """Annotated stills for still-image sources only (a video's frames go to its video)."""

    needs_annotated = True

    def __init__(self, sink: Any) -> None:
        self.sink = sink

    def write(self, frame: Any, dets: Any, annotated: Any = None) -> None:
        if frame.position_s is None and frame.index == 0 and not frame.live:
            self.sink.write(frame, dets, annotated)

    def close(self) -> None:
        self.sink.close()


class _VideosOnly(_ImagesOnly):
    """Annotated video for video and live sources."""

    def write(self, frame: Any, dets: Any, annotated: Any = None) -> None:
        if frame.position_s is not None or frame.live:
            self.sink.write(frame, dets, annotated)

    def finish(self, source: str) -> None:
        self.sink.finish(source)


class Runner:
    """The run loop: sources -> batches -> detector -> sinks (+ window), every stage timed."""

    def __init__(self, args: argparse.Namespace, detector: Any, sinks: Any) -> None:
        self.args = args
        self.detector = detector
        self.sinks = sinks
        self.times = StageTimes()
        self.frames = 0
        self.dropped = 0
        self.problems = 0
        self.detections = 0
        self.stop = False

    def report(self, line: str) -> None:
        from tqdm import tqdm

        tqdm.write(line, file=sys.stderr)

    def process(self, pending: list[Any], progress: Any) -> None:
        from ..draw import annotate

        if not pending:
            return
        results = self.detector.detect([f.image for f in pending])
        n = len(pending)
        for frame, dets in zip(pending, results, strict=True):
            t0 = time.perf_counter()
            annotated = (
                annotate(frame.image, dets) if (self.sinks.wants_annotated or self.args.show) else None
            )
            self.sinks.write(frame, dets, annotated)
            if self.args.show and annotated is not None:
                self._show(annotated)
            self.times.add("sink", time.perf_counter() - t0)
            self.times.add("decode", frame.decode_s)
            for stage in ("preprocess", "infer", "postprocess"):
                self.times.add(stage, dets.timings[stage] / n)
            self.frames += 1
            self.detections += len(dets)
            if progress is not None:
                progress.update(1)
            if self.args.max_frames is not None and self.frames >= self.args.max_frames:
                self.stop = True
        pending.clear()

    def _show(self, image: Any) -> None:
        import cv2

        cv2.imshow("edgercnn", image)
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            self.stop = True

    def run(self, sources: list[Any]) -> None:
        from tqdm import tqdm

        from ..sources import SourceProblem

        file_sources = [s for s in sources if not isinstance(s, SourceProblem) and not s.live]
        totals = [s.total for s in file_sources]
        show_bar = bool(file_sources) and not self.args.no_progress
        total = sum(t for t in totals if t) if all(totals) else None
        progress = tqdm(total=total, unit="frame", disable=None if show_bar else True, file=sys.stderr)
        batch = max(1, self.args.batch or self.detector.batch_size or 1)
        try:
            for source in sources:
                if self.stop:
                    break
                if isinstance(source, SourceProblem):
                    self.report(str(source))
                    self.problems += 1
                    continue
                pending: list[Any] = []
                try:
                    for item in source.frames():
                        if isinstance(item, SourceProblem):
                            self.report(str(item))
                            self.problems += int(item.is_error)
                            continue
                        pending.append(item)
                        if source.live or len(pending) >= batch:
                            self.process(pending, progress)
                        if self.stop:
                            break
                    self.process(pending, progress)
                finally:
                    self.dropped += source.dropped
                    self.sinks.source_finished(source.name)
        finally:
            progress.close()


def _summary(runner: Runner, wall: float, interrupted: bool) -> str:
    fps = runner.frames / wall if wall > 0 else 0.0
    head = (
        f"{'interrupted: ' if interrupted else ''}{runner.frames} frames, {runner.detections} detections, "
        f"{runner.dropped} dropped, {runner.problems} inputs skipped, {wall:.2f} s, {fps:.2f} FPS"
    )
    summary = runner.times.summary(STAGES)
    return head + ("\n" + format_table(summary) if summary else "")


def run(args: argparse.Namespace) -> int:
    _quiet_opencv()
    from ..detector import Detector
    from ..sources import open_sources

    if args.show and (why := _display_available()):
        raise UsageError(f"--show: {why}")
    classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None
    detector = Detector.open(
        args.model,
        backend=args.backend,
        device=args.device,
        threads=args.threads,
        score_threshold=args.score,
        classes=classes,
    )
    print(
        f"model {args.model}: {detector.config.architecture}, backend {detector.backend.name}",
        file=sys.stderr,
    )
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    interrupted = False
    start = time.perf_counter()
    runner = None
    try:
        with _make_sinks(args) as sinks:
            runner = Runner(args, detector, sinks)
            runner.run(open_sources(args.source))
    except KeyboardInterrupt:
        interrupted = True
    except EdgercnnError as exc:
        exc.exit_code = 1  # failed mid-run: the outputs opened so far were closed properly
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        detector.close()
    if runner is None:
        return 130 if interrupted else 1
    print(_summary(runner, time.perf_counter() - start, interrupted), file=sys.stderr)
    if args.out is not None:
        print(f"outputs in {args.out}", file=sys.stderr)
    if interrupted:
        return 130
    return 0 if runner.frames > 0 else 1
