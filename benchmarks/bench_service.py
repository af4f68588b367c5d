"""The camera service against inference alone, side by side in one run, for 1, 2 and 4 streams.

For each stream count N: ``edgercnn run`` reads N live RTSP streams of a 720p video (a real
GStreamer RTSP server on loopback, serving the H.264 file as it is, so the server costs almost no
CPU) with batch N, and its aggregate frames per second and frame age (capture to result, from
the JSONL's ``age_s``) are measured over a window; right before and after, the same graph is
timed on batches of N decoded frames alone (``Detector.detect``, what ``edgercnn bench``
measures). Then a reconnect: the server is killed, returns after 5 s, and the time to the first
new result is measured.

    python benchmarks/bench_service.py --model r50_720p_dynamic.onnx --video street.mp4 [--streams 1 2 4]

Targets (the service issue): with 4 streams >= 90 % of inference-only throughput; frame age p99 <=
2 x (one batch's inference time + one frame period); reconnect within 5 s of the server's return.
Writes its section of docs/benchmarks.md unless --no-doc.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
from doc_sections import write_section

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edgercnn.runtime.detector import Detector  # noqa: E402

from tests.peers.harness import RtspServer  # noqa: E402

MARK_START = "<!-- bench_service:start -->"
MARK_END = "<!-- bench_service:end -->"
CLI = "import sys; from edgercnn.cli import main; sys.exit(main(sys.argv[1:]))"


def looped_h264(video: Path, seconds: float, fps: int, out: Path) -> Path:
    """The video at ``fps``, repeated to last ``seconds``, as one H.264 MP4 (encoded once, here)."""
    cap = cv2.VideoCapture(str(video))
    length = cap.get(cv2.CAP_PROP_FRAME_COUNT) / max(cap.get(cv2.CAP_PROP_FPS), 1.0)
    cap.release()
    copies = int(seconds / max(length, 0.1)) + 1
    sources = " ".join(f"filesrc location={video} ! decodebin ! videoconvert ! c." for _ in range(copies))
    pipeline = (
        f"concat name=c ! videoconvert ! videorate ! video/x-raw,framerate={fps}/1,format=I420 "
        f"! x264enc speed-preset=veryfast key-int-max={fps} bframes=0 threads=2 "
        f"! video/x-h264,profile=main ! h264parse ! mp4mux ! filesink location={out} {sources}"
    )
    subprocess.run(["gst-launch-1.0", "-q", *pipeline.split()], check=True, capture_output=True)
    return out


def inference_only(detector: Detector, frame: np.ndarray, batch: int, seconds: float) -> tuple[float, float]:
    """Frames per second and median seconds per batch of ``batch`` frames, for about ``seconds``."""
    detector.detect([frame] * batch)  # warm
    times = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 3:
        t0 = time.perf_counter()
        detector.detect([frame.copy() for _ in range(batch)])
        times.append(time.perf_counter() - t0)
    return batch * len(times) / sum(times), float(np.median(times))


def _lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def batch_rate(window: list[dict]) -> float:
    """Frames per second between the first and the last batch written in the window.

    With seconds-long batches a fixed window counts whole batches only (60 s holds two or three
    batches of 4), so the rate is taken over the batches after the first, between completions.
    """
    done = sorted(r["timestamp"] + r["age_s"] for r in window)
    batches: list[list[float]] = []
    for t in done:
        if batches and t - batches[-1][-1] < 0.2:  # written together: one batch
            batches[-1].append(t)
        else:
            batches.append([t])
    if len(batches) < 2:
        return float("nan")
    frames = sum(len(b) for b in batches[1:])
    return frames / (batches[-1][-1] - batches[0][-1])


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def service_run(
    model: Path,
    video: Path,
    streams: int,
    fps: int,
    warm_s: float,
    window_s: float,
    threads: int | None,
    work: Path,
) -> dict:
    """Aggregate FPS and frame ages of ``edgercnn run`` on ``streams`` live streams."""
    out = work / f"run{streams}"
    mounts = [f"cam{i}" for i in range(streams)]
    with RtspServer(mounts, video=str(video), passthrough=True) as server:
        args = [
            "run",
            "--model",
            str(model),
            "--source",
            *[server.url(m) for m in mounts],
            "--out",
            str(out),
            "--batch",
            str(streams),
            "--no-video",
            "--no-coco",
            "--no-images",
            "--no-progress",
        ]
        if threads:
            args += ["--threads", str(threads)]
        proc = subprocess.Popen([sys.executable, "-c", CLI, *args], stderr=subprocess.PIPE, text=True)
        jsonl = out / "detections.jsonl"
        deadline = time.monotonic() + 300
        while len({r["stream"] for r in _lines(jsonl)}) < streams and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(warm_s)
        t0, n0, cpu0 = time.time(), len(_lines(jsonl)), _cpu_seconds(proc.pid)
        time.sleep(window_s)
        t1, cpu1 = time.time(), _cpu_seconds(proc.pid)
        lines = _lines(jsonl)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    window = [r for r in lines[n0:] if r["timestamp"] + r["age_s"] <= t1]
    ages = np.asarray([r["age_s"] for r in window])
    per_stream = {s: sum(r["stream"] == s for r in window) for s in {r["stream"] for r in window}}
    dropped = 0
    for line in err.splitlines():
        if " dropped," in line and "frames," in line:
            dropped = int(line.split(" dropped")[0].rsplit(" ", 1)[-1])
    return {
        "fps": batch_rate(window),
        "age_p50": float(np.percentile(ages, 50)) if ages.size else float("nan"),
        "age_p99": float(np.percentile(ages, 99)) if ages.size else float("nan"),
        "frames": len(window),
        "per_stream": per_stream,
        "cpu_cores": (cpu1 - cpu0) / (t1 - t0),
        "dropped": dropped,
    }


def reconnect_run(model: Path, video: Path, work: Path) -> float:
    """Seconds from the server's return (after 5 s dead) to the reader's first frame from it.

    Taken from the reader's own ``reconnected:`` line as it arrives, not from the next result: with
    seconds-long inference the next result also waits for the batch in flight.
    """
    out = work / "reconnect"
    server = RtspServer(["cam"], video=str(video), passthrough=True).start()
    lines: list[tuple[float, str]] = []
    try:
        args = [
            "run",
            "--model",
            str(model),
            "--source",
            server.url("cam"),
            "--out",
            str(out),
            "--no-video",
            "--no-coco",
            "--no-images",
            "--no-progress",
        ]
        proc = subprocess.Popen([sys.executable, "-c", CLI, *args], stderr=subprocess.PIPE, text=True)

        def collect() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                lines.append((time.time(), line))

        reader = threading.Thread(target=collect, daemon=True)
        reader.start()
        while not any(line.startswith("connected:") for _, line in lines):
            time.sleep(0.1)
        time.sleep(2.0)
        server.kill()
        time.sleep(5.0)
        server.start()
        back = time.time()
        while not any(t > back and line.startswith("reconnected:") for t, line in lines):
            if time.time() - back > 120:
                raise RuntimeError("no reconnect within 120 s")
            time.sleep(0.02)
        first = min(t for t, line in lines if t > back and line.startswith("reconnected:"))
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    finally:
        server.kill()
    return first - back


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", type=Path, required=True, help="a dynamic-batch ONNX exported for 1280x720"
    )
    parser.add_argument("--video", type=Path, required=True, help="a 720p video (looped to last the run)")
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--fps", type=int, default=10, help="frame rate the streams are served at")
    parser.add_argument("--window", type=float, default=60.0, help="seconds measured per stream count")
    parser.add_argument("--warm", type=float, default=15.0, help="seconds after every stream delivers")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-doc", action="store_true", help="print, do not write docs/benchmarks.md")
    args = parser.parse_args()
    if shutil.which("gst-launch-1.0") is None:
        print("needs gst-launch-1.0 (scripts/install_test_peers.sh)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench_service_"))
    total = (args.warm + args.window + 60) * len(args.streams) + 120
    cache = Path.home() / ".cache" / "edgercnn" / f"looped_{args.video.stem}_{args.fps}fps_{int(total)}s.mp4"
    if not cache.exists():  # encoding the looped stream once costs minutes; reruns reuse it
        cache.parent.mkdir(parents=True, exist_ok=True)
        looped_h264(args.video, total, args.fps, work / "looped.mp4").replace(cache)
    looped = cache
    frame = cv2.VideoCapture(str(looped)).read()[1]
    detector = Detector.open(args.model, threads=args.threads)
    rows = []
    for n in args.streams:
        before = inference_only(detector, frame, n, 20.0)
        service = service_run(args.model, looped, n, args.fps, args.warm, args.window, args.threads, work)
        after = inference_only(detector, frame, n, 20.0)
        inf_fps = (before[0] + after[0]) / 2
        batch_s = (before[1] + after[1]) / 2
        target = 2 * (batch_s + 1.0 / args.fps)
        rows.append((n, inf_fps, batch_s, service, target))
        print(n, inf_fps, batch_s, service, file=sys.stderr)
    detector.close()
    reconnect_s = reconnect_run(args.model, looped, work)
    lines = [
        f"`python benchmarks/bench_service.py --model {args.model.name} --video {args.video.name}` on "
        f"{platform.machine()} with {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}. Streams: "
        f"{frame.shape[1]}x{frame.shape[0]} H.264 at {args.fps} fps from a real GStreamer RTSP server on "
        f"loopback (served as encoded, no re-encoding). Inference-only: `Detector.detect` on batches of N "
        f"decoded frames, "
        f"timed right before and after each service run (mean of the two). Window {args.window:.0f} s after "
        f"{args.warm:.0f} s of warm-up. Age: capture to result written (JSONL `age_s`). Service FPS: "
        f"frames written between the first and last batch completion in the window.",
        "",
        "| streams | inference-only FPS | service FPS | service / inference | frame age p50 s | p99 s "
        "| p99 target s | service CPU cores | dropped |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n, inf_fps, _batch_s, s, target in rows:
        lines.append(
            f"| {n} | {inf_fps:.3f} | {s['fps']:.3f} | {100 * s['fps'] / inf_fps:.1f} % | "
            f"{s['age_p50']:.2f} | {s['age_p99']:.2f} | {target:.2f} | {s['cpu_cores']:.2f} | "
            f"{s['dropped']} |"
        )
    lines += [
        "",
        f"Reconnect: the reader's first frame {reconnect_s:.2f} s after the server returned from 5 s dead "
        "(target 5 s; taken from its `reconnected:` log line as it arrived).",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_doc:
        write_section(MARK_START, MARK_END, "Camera service vs inference alone (CPU)", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
