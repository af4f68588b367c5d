"""Run an exported R-CNN on images, videos, cameras or streams, as a service (``edgercnn run``).

Torch-free: this is what runs on the camera. Every ``--source`` (or every stream of a ``--fleet``
file) is read by its own thread; frames waiting from several streams share one inference call;
live streams that end, error or stall are reopened with backoff. Bad inputs get one line each and
the run goes on; SIGTERM or Ctrl-C finishes the batch in flight, closes every output validly and
exits 130. A stream that fails for good makes the exit code 1, with a per-stream summary.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from typing import Any

from ..errors import EdgercnnError, UsageError
from ..stats import STAGES, format_table
from ..validators import (
    existing_file_arg,
    non_negative_float_arg,
    non_negative_int_arg,
    output_dir_arg,
    port_arg,
    positive_float_arg,
    positive_int_arg,
    score_arg,
)  # fmt: skip


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", required=True, help="model.onnx, model.trt.onnx or model.engine (with its .json)"
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--source",
        nargs="+",
        help="image/video files, folders, globs ('imgs/*.jpg'), camera indices (0), rtsp:// or http:// URLs, "
        "GStreamer pipelines ('... ! appsink'); each is read by its own thread",
    )
    where.add_argument(
        "--fleet", type=existing_file_arg, help="a TOML file naming the streams and the service settings"
    )
    p.add_argument(
        "--out",
        type=output_dir_arg,
        default=None,
        help="output folder (JSONL, COCO json, annotated media); one that already holds results "
        "is left alone and the run writes to a new sibling folder (out-2, ...)",
    )
    p.add_argument(
        "--backend",
        default="auto",
        help="auto | onnxruntime | openvino | tensorrt | triton (--model grpc://host:8001/NAME)",
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | tensorrt")
    p.add_argument(
        "--plugin-lib",
        type=existing_file_arg,
        default=None,
        help="the TensorRT plugin library an engine with plugin layers needs (default: $EDGERCNN_PLUGIN_LIB, "
        "then plugins/build); it must match the engine's sidecar hash",
    )
    p.add_argument(
        "--threads", type=positive_int_arg, default=None, help="inference threads (default: the library's)"
    )
    p.add_argument("--score", type=score_arg, default=None, help="minimum score to keep (default 0.5)")
    p.add_argument("--classes", default=None, help="comma-separated class names or ids to keep")
    p.add_argument(
        "--batch",
        type=positive_int_arg,
        default=None,
        help="frames per inference call (default: the graph's batch, or one per stream)",
    )
    p.add_argument("--show", action="store_true", help="show annotated frames in a window (needs a display)")
    p.add_argument("--no-images", action="store_true", help="do not write annotated images")
    p.add_argument("--no-video", action="store_true", help="do not write annotated videos")
    p.add_argument("--no-coco", action="store_true", help="do not write the COCO results json")
    p.add_argument("--rle", action="store_true", help="add mask RLEs to the JSONL (needs pycocotools)")
    p.add_argument(
        "--fps",
        type=positive_float_arg,
        default=None,
        help="frame rate of written videos (default: the source's)",
    )
    p.add_argument("--max-frames", type=positive_int_arg, default=None, help="stop after this many frames")
    p.add_argument(
        "--proposals",
        choices=("auto", "motion"),
        default="auto",
        help="where a Fast R-CNN mode model's proposals come from: motion = moving regions of each "
        "stream (OpenCV MOG2 background subtraction); auto (default) = motion when the model takes "
        "proposals, the model's own RPN otherwise",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    s = p.add_argument_group("service (live streams)")
    s.add_argument(
        "--batch-timeout-ms",
        type=non_negative_float_arg,
        default=None,
        help="longest a frame waits for the others of its batch (default 50)",
    )
    s.add_argument(
        "--stall-timeout",
        type=positive_float_arg,
        default=None,
        help="seconds without a frame before a stream is reopened; also the open timeout (default 10)",
    )
    s.add_argument(
        "--reconnect-initial",
        type=positive_float_arg,
        default=None,
        help="first retry delay, s (default 0.5)",
    )
    s.add_argument(
        "--reconnect-max", type=positive_float_arg, default=None, help="longest retry delay, s (default 2)"
    )
    s.add_argument(
        "--reconnect-attempts",
        type=non_negative_int_arg,
        default=None,
        help="consecutive failures before a stream is given up (default 0: never)",
    )
    s.add_argument(
        "--metrics-port",
        type=port_arg,
        default=None,
        help="serve /metrics (Prometheus) and /healthz on this port (0: any free port); off by default",
    )
    s.add_argument(
        "--metrics-host", default=None, help="address to bind the metrics endpoint (default 127.0.0.1)"
    )
    s.add_argument(
        "--rotate-mb",
        type=positive_float_arg,
        default=None,
        help="start a new JSONL segment after this many MB",
    )
    s.add_argument(
        "--rotate-minutes", type=positive_float_arg, default=None, help="start a new JSONL segment this often"
    )


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
    """Our one-line problem reports replace OpenCV's and FFmpeg's own multi-line warnings.

    Unless the user set FFmpeg's options: RTSP is read over TCP (on a busy box, UDP loses packets
    and gives corrupt frames rather than late ones), and a stream is probed for 0.5 s instead of
    FFmpeg's 5 s budget (an RTSP camera's SDP already says the codec and size; measured here, it cuts
    opening a stream from 2.8 s to 0.6 s, which is most of a reconnect).
    """
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp|analyzeduration;500000")
    import cv2

    with contextlib.suppress(AttributeError):
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def report(line: str) -> None:
    from tqdm import tqdm

    tqdm.write(line, file=sys.stderr)


def _summary(service: Any, problems: int, wall: float, interrupted: bool) -> str:
    fps = service.frames / wall if wall > 0 else 0.0
    dropped = sum(r.stats.dropped for r in service.readers)
    head = (
        f"{'interrupted: ' if interrupted else ''}{service.frames} frames, {service.detections} detections, "
        f"{dropped} dropped, {problems} inputs skipped, {wall:.2f} s, {fps:.2f} FPS"
    )
    summary = service.times.summary(STAGES)
    parts = [head]
    if summary:
        parts.append(format_table(summary))
    parts.append("\n".join(service.summary_rows()))
    return "\n".join(parts)


class _StopOnSignal:
    """SIGTERM/SIGINT ask the service to stop after the batch in flight; a second one is Ctrl-C."""

    def __init__(self, service: Any) -> None:
        self.service = service
        self.signalled = False
        self.previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signalled:
            raise KeyboardInterrupt
        self.signalled = True
        report(f"stopping ({signal.Signals(signum).name}): finishing the batch in flight, closing outputs")
        self.service.request_stop()

    def __enter__(self) -> _StopOnSignal:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def _progress(plan: Any, args: argparse.Namespace) -> Any:
    """A frame bar for file-only runs (a live run has no end to count towards)."""
    from tqdm import tqdm

    if args.no_progress or any(r.live is not None for r in plan.readers) or not plan.readers:
        return None
    totals = [src.total for r in plan.readers for _, src in r.files]
    total = sum(totals) if all(totals) else None
    return tqdm(total=total, unit="frame", disable=None, file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    _quiet_opencv()
    from ..detector import Detector
    from ..postprocess import class_ids
    from ..service.build import build_service, plan_run

    if args.show and (why := _display_available()):
        raise UsageError(f"--show: {why}")
    plan = plan_run(args)  # every argument and the fleet file checked before the model loads
    options = {} if args.plugin_lib is None else {"plugin_lib": str(args.plugin_lib)}
    detector = Detector.open(
        args.model, backend=args.backend, device=args.device, threads=args.threads, **options
    )
    try:
        class_ids(plan.classes, detector.config.class_names)  # a bad --classes is the only line said
        report(f"model {args.model}: {detector.config.architecture}, backend {detector.backend.name}")
        for line in plan.notes:
            report(line)
        service = build_service(plan, detector, report)
        service.proposer = _proposer(args, detector)
        if service.proposer is not None:
            report(
                f"proposals: motion regions of each stream (at most {detector.config.max_proposals} a frame)"
            )
    except BaseException:
        detector.close()
        raise
    progress = _progress(plan, args)
    service.on_frame = _frame_hook(service, progress, args.show)
    service.annotate_all = args.show
    interrupted = False
    start = time.perf_counter()
    try:
        with service.opened(), _StopOnSignal(service) as stopper:
            service.run()
        interrupted = stopper.signalled
    except KeyboardInterrupt:
        interrupted = True
    except EdgercnnError as exc:
        exc.exit_code = 1  # failed mid-run: the outputs opened so far were closed properly
        raise
    finally:
        if progress is not None:
            progress.close()
        detector.close()
    print(
        _summary(service, plan.problems + service.problems(), time.perf_counter() - start, interrupted),
        file=sys.stderr,
    )
    if plan.folder is not None:
        print(f"outputs in {plan.folder}", file=sys.stderr)
    if interrupted:
        return 130
    failed = service.failed()
    if failed:
        names = ", ".join(f"{r.stream} ({r.stats.last_error})" for r in failed)
        print(f"error: {len(failed)} stream(s) failed for good: {names}", file=sys.stderr)
        return 1
    return 0 if service.frames > 0 else 1


def _proposer(args: argparse.Namespace, detector: Any) -> Any:
    """Motion proposals for a Fast R-CNN mode model; ``--proposals motion`` with an RPN model is refused."""
    wanted = getattr(args, "proposals", "auto")
    if not detector.wants_proposals:
        if wanted == "motion":
            raise UsageError(
                f"--proposals motion: {args.model} runs its own RPN; export it with "
                "'edgercnn export --proposals external' to feed it motion regions"
            )
        return None
    from ..motion import StreamMotionProposals

    return StreamMotionProposals(max_proposals=detector.config.max_proposals)


def _frame_hook(service: Any, progress: Any, show: bool) -> Any:
    """Per written frame: advance the bar; show the window (q or Esc stops the run)."""
    if progress is None and not show:
        return None

    def hook(frame: Any, dets: Any, annotated: Any) -> None:
        if progress is not None:
            progress.update(1)
        if show and annotated is not None:
            import cv2

            cv2.imshow("edgercnn", annotated)
            if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                service.request_stop()

    return hook
