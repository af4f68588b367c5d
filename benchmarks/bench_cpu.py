"""Every CPU path a user could pick for one model, side by side in one round-robin run.

    python benchmarks/bench_cpu.py --arch fasterrcnn_resnet50_fpn --size 1333x800 --threads 1,2
    python benchmarks/bench_cpu.py --arch maskrcnn_resnet50_fpn --size 1280x720 --paths portable,int8
    python benchmarks/bench_cpu.py --arch ref_keypointrcnn --size 384x288 \\
        --paths eager,portable,portable-graph-decode,openvino

Paths (each a whole frame in, detections out, pre- and post-processing included):

- ``eager``: torchvision ``model([image])``; ``compile``: ``torch.compile`` of the same model;
- ``torchscript-onnx``: torchvision's own ONNX export (``torch.onnx.export(dynamo=False)``) in
  onnxruntime, the path its documentation shows;
- ``portable`` / ``int8``: this project's portable FP32 ONNX / INT8 CPU variant through the runtime's
  ``Detector`` on onnxruntime; ``openvino`` / ``openvino-int8``: the same files on OpenVINO;
- ``portable-graph-decode``: Keypoint R-CNN exported with ``--keypoint-decode graph`` (the old graph).

Each path runs in its own worker process (so its peak RSS is its own); the parent sends one frame
to each worker in turn, ``--runs`` rounds, so load from anything else on the machine falls on all
paths alike; ratios within one run are the figures to read. The INT8 variant is calibrated here
on ``--calib`` (``export.quantize``), and its time split (int8 kernels / Q-DQ / float ops, per op)
is taken from onnxruntime's profiler. Writes its section of docs/benchmarks.md unless --no-write.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLE_VIDEO = REPO / "samples" / "synth_street.mp4"
ALL_PATHS = ("eager", "compile", "torchscript-onnx", "portable", "int8", "openvino", "openvino-int8")
DETECTOR_PATHS = {
    "portable": ("model.onnx", "onnxruntime"),
    "int8": ("model.int8.cpu.onnx", "onnxruntime"),
    "openvino": ("model.onnx", "openvino"),
    "openvino-int8": ("model.int8.cpu.onnx", "openvino"),
    "portable-graph-decode": ("graph_decode/model.onnx", "onnxruntime"),
}


# --- the frame and the model -------------------------------------------------------------------


def bench_frame(width: int, height: int) -> np.ndarray:
    """A frame of the bundled sample street video at the camera size (deterministic, no shared data)."""
    capture = cv2.VideoCapture(str(SAMPLE_VIDEO))
    for _ in range(30):  # a frame with the scene in motion
        ok, frame = capture.read()
    capture.release()
    if not ok:
        raise SystemExit(f"{SAMPLE_VIDEO}: cannot read the sample video")
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR)


def _card(arch: str) -> Path:
    return REPO / "models" / f"{arch}.json"


def weights_description(arch: str) -> str:
    card = _card(arch)
    return f"trained weights ({card.name})" if card.exists() else "seeded random weights"


def load_model(arch: str) -> Any:
    """The card's trained weights for ``ref_*`` models, else seeded random weights."""
    import torch
    from edgercnn.export.refmodels import architectures

    card = _card(arch)
    if card.exists():
        return architectures.build_from_card(architectures.load_card(card))
    torch.manual_seed(0)
    return architectures.build_model(arch).eval()


# --- artifacts (parent) ------------------------------------------------------------------------


def prepare(args: argparse.Namespace, work: Path, paths: list[str], frame: np.ndarray) -> dict[str, float]:
    """Export what the chosen paths need into ``work`` (reused when present); returns seconds per step."""
    import torch
    from edgercnn.export import metadata
    from edgercnn.export.deploy import DeployOptions, DeployRCNN
    from edgercnn.export.onnx_export import export_onnx

    seconds: dict[str, float] = {}
    model = load_model(args.arch)
    height, width = frame.shape[:2]
    wanted = {DETECTOR_PATHS[p][0] for p in paths if p in DETECTOR_PATHS}
    if any(w.startswith("model.") for w in wanted):
        wanted.add("model.onnx")  # the INT8 variant is made from it
    for name in sorted(wanted, key=lambda n: n != "model.onnx"):
        target = work / name
        if target.exists():
            continue
        t0 = time.perf_counter()
        if name == "model.int8.cpu.onnx":
            quantize(work / "model.onnx", args, work)
        else:
            decode = "graph" if name.startswith("graph_decode/") else "host"
            deploy = DeployRCNN(model, DeployOptions(height, width, keypoint_decode=decode)).eval()
            config = metadata.build_config(
                deploy, builder=args.arch, class_names=metadata.default_class_names(deploy.num_classes),
                keypoint_names=[f"kp{i}" for i in range(17)] if deploy.kind == "keypointrcnn" else None,
            )  # fmt: skip
            target.parent.mkdir(parents=True, exist_ok=True)
            export_onnx(deploy, target, config)
        seconds[name] = time.perf_counter() - t0
    naive = work / "torchscript.onnx"
    if "torchscript-onnx" in paths and not naive.exists():
        t0 = time.perf_counter()
        rgb = torch.from_numpy(frame[:, :, ::-1].copy()).permute(2, 0, 1).float() / 255.0
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(model, ([rgb],), str(naive), dynamo=False, opset_version=17)
        seconds["torchscript.onnx"] = time.perf_counter() - t0
    return seconds


def quantize(fp32: Path, args: argparse.Namespace, out: Path) -> None:
    """The INT8 CPU variant, calibrated on ``--calib`` (no AP evaluation: no labelled set at this size)."""
    from edgercnn.export.quantize.pipeline import QuantizeOptions, quantize_model

    options = QuantizeOptions(
        variants=("cpu",), calib_limit=args.calib_limit, threads=2, cpu_layout="u8s8", bench_runs=1
    )
    quantize_model(fp32, args.calib, out, options)


# --- workers -----------------------------------------------------------------------------------


def make_runner(path: str, work: Path, arch: str, threads: int, frame: np.ndarray) -> Callable[[], dict]:
    """One call = one frame through ``path``; returns the detection count and the postprocess ms."""
    if path in DETECTOR_PATHS:
        from edgercnn.runtime.detector import Detector

        file, backend = DETECTOR_PATHS[path]
        detector = Detector.open(work / file, backend=backend, device="cpu", threads=threads)

        def run_detector() -> dict:
            (dets,) = detector.detect([frame])
            return {"detections": len(dets), "post_ms": dets.timings["postprocess"] * 1e3}

        return run_detector
    import torch

    torch.set_num_threads(threads)
    rgb = torch.from_numpy(frame[:, :, ::-1].copy()).permute(2, 0, 1).float() / 255.0
    if path == "torchscript-onnx":
        from edgercnn.runtime.sessions import create_session

        session = create_session(
            work / "torchscript.onnx", threads=threads, providers=["CPUExecutionProvider"]
        )
        name = session.get_inputs()[0].name
        x = rgb.numpy()
        return lambda: {"detections": len(session.run(None, {name: x})[1])}
    model = load_model(arch)
    if path == "compile":
        model = torch.compile(model)

    def run_torch() -> dict:
        with torch.inference_mode():
            return {"detections": len(model([rgb])[0]["scores"])}

    return run_torch


def worker(args: argparse.Namespace) -> int:
    """Serve ``run`` lines on stdin with one JSON line each; ``quit`` answers with the peak RSS."""
    from edgercnn.runtime.commands.bench import peak_rss_mb

    frame = bench_frame(*args.size)
    t0 = time.perf_counter()
    try:
        runner = make_runner(args.worker, Path(args.work), args.arch, args.worker_threads, frame)
        first = runner()  # warm-up (torch.compile compiles here)
    except Exception as exc:  # a peer that does not work on this model is a result, not a crash
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(json.dumps({"error": f"{type(exc).__name__}: {text[:200]}"}), flush=True)
        return 0
    print(json.dumps({"ready": True, "setup_s": time.perf_counter() - t0, **first}), flush=True)
    for line in sys.stdin:
        if line.strip() == "quit":
            break
        t = time.perf_counter()
        result = runner()
        print(json.dumps({"ms": (time.perf_counter() - t) * 1e3, **result}), flush=True)
    print(json.dumps({"rss_mb": peak_rss_mb()}), flush=True)
    return 0


class Worker:
    """The parent's handle on one worker process."""

    def __init__(self, path: str, threads: int, args: argparse.Namespace, work: Path) -> None:
        self.path, self.threads = path, threads
        size = f"{args.size[0]}x{args.size[1]}"
        command = [sys.executable, __file__, "--worker", path, "--worker-threads", str(threads),
                   "--arch", args.arch, "--size", size, "--work", str(work)]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        self.times: list[float] = []
        self.post: list[float] = []
        self.info: dict[str, Any] = {}

    def _read(self) -> dict[str, Any]:
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            return {"error": f"worker exited with {self.proc.wait()}"}
        return json.loads(line)

    def start(self) -> None:
        self.info = self._read()

    @property
    def ok(self) -> bool:
        return "error" not in self.info

    def run(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        reply = self._read()
        if "error" in reply:
            self.info = reply
            return
        self.times.append(reply["ms"])
        if "post_ms" in reply:
            self.post.append(reply["post_ms"])

    def stop(self) -> None:
        if self.ok and self.proc.stdin is not None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.info.update(self._read())
        self.proc.wait(timeout=60)


def run_round_robin(paths: list[str], threads: int, args: argparse.Namespace, work: Path) -> list[Worker]:
    workers = []
    for path in paths:  # started one at a time: setup (compile, session creation) is not timed
        w = Worker(path, threads, args, work)
        w.start()
        print(f"  {path} x{threads}: {'ready' if w.ok else w.info['error']}", file=sys.stderr)
        workers.append(w)
    for r in range(args.runs):
        for w in workers:
            if w.ok:
                w.run()
        print(f"  round {r + 1}/{args.runs} done", file=sys.stderr)
    for w in workers:
        w.stop()
    return workers


# --- the INT8 time split -----------------------------------------------------------------------


def int8_split(work: Path, frame: np.ndarray, threads: int) -> dict[str, Any]:
    from edgercnn.export.quantize.measure import time_split
    from edgercnn.runtime.config import ModelConfig
    from edgercnn.runtime.preprocess import prepare_batch

    path = work / "model.int8.cpu.onnx"
    config = ModelConfig.from_model_file(path)
    batch, _ = prepare_batch([frame], config, batch_size=config.batch)
    return time_split(path, {config.input.name: batch}, threads=threads, runs=1).to_dict()


# --- report ------------------------------------------------------------------------------------


def table(workers: list[Worker], threads: int) -> list[str]:
    med = {w.path: statistics.median(w.times) for w in workers if w.ok and w.times}
    eager = med.get("eager")
    portable = med.get("portable")
    lines = [
        f"**{threads} thread{'s' if threads > 1 else ''}**",
        "",
        "| path | median ms | vs eager | vs portable | post-processing ms | peak RSS MB | detections |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for w in workers:
        if not w.ok or w.path not in med:
            lines.append(f"| {w.path} | fails: {w.info.get('error', 'no runs')} | | | | | |")
            continue
        ms = med[w.path]
        post = "-"
        if w.post:
            post_ms = statistics.median(w.post)
            post = f"{post_ms:.1f} ({100 * post_ms / ms:.1f} %)"
        vs_eager = f"{eager / ms:.2f}x" if eager else "-"
        vs_portable = f"{portable / ms:.2f}x" if portable else "-"
        lines.append(
            f"| {w.path} | {ms:.0f} | {vs_eager} | {vs_portable} | {post} | "
            f"{w.info.get('rss_mb', 0):.0f} | {w.info.get('detections', '-')} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="fasterrcnn_resnet50_fpn")
    p.add_argument("--size", default="1333x800", help="frame WIDTHxHEIGHT (the graph's source size)")
    p.add_argument("--paths", default=",".join(ALL_PATHS), help=f"comma list of {', '.join(DETECTOR_PATHS)}, "
                   "eager, compile, torchscript-onnx")  # fmt: skip
    p.add_argument("--threads", default="1,2", help="comma list of thread counts")
    p.add_argument("--runs", type=int, default=3, help="timed rounds (every path once per round)")
    p.add_argument("--calib", type=Path, default=REPO / "calib_data" / "synth")
    p.add_argument("--calib-limit", type=int, default=16)
    p.add_argument("--work", type=Path, default=None, help="keep the exported files here (reused on rerun)")
    p.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--worker-threads", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        p.error(f"--size: expected WIDTHxHEIGHT, got {args.size!r}")
    args.size = (width, height)
    if args.worker:
        return worker(args)
    paths = [s.strip() for s in args.paths.split(",") if s.strip()]
    unknown = [s for s in paths if s not in (*ALL_PATHS, *DETECTOR_PATHS)]
    if unknown:
        p.error(f"--paths: unknown {', '.join(unknown)}")
    work = args.work or Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_cpu_{args.arch}_{width}x{height}"
    work.mkdir(parents=True, exist_ok=True)
    frame = bench_frame(width, height)
    print(f"preparing {', '.join(paths)} in {work}", file=sys.stderr)
    prepare(args, work, paths, frame)
    weights = weights_description(args.arch)
    lines = [
        f"`python benchmarks/bench_cpu.py {' '.join(shlex.quote(a) for a in (argv or sys.argv[1:]))}`; "
        f"{platform.machine()} ({os.cpu_count()} CPUs), {platform.python_version()}, model {args.arch} "
        f"({weights}), frame {width}x{height} from samples/synth_street.mp4, median of {args.runs} "
        f"round-robin runs, load average at the end {' '.join(f'{v:.1f}' for v in os.getloadavg())}.",
        "",
    ]
    for threads in (int(t) for t in args.threads.split(",")):
        print(f"{threads} thread(s):", file=sys.stderr)
        lines += [*table(run_round_robin(paths, threads, args, work), threads), ""]
    if "int8" in paths:
        split = int8_split(work, frame, 1)
        top = ", ".join(f"{op} {ms:.0f} ms" for op, ms in split["top_float_ops"])
        lines.append(
            f"INT8 time split (1 thread, onnxruntime profiler): int8 kernels {split['int8_ms']:.0f} ms, "
            f"Q/DQ {split['qdq_ms']:.0f} ms, float ops {split['float_ms']:.0f} ms "
            f"({100 * split['float_share']:.0f} %): {top}."
        )
    print("\n".join(lines))
    if not args.no_write:
        sys.path.insert(0, str(Path(__file__).parent))
        from doc_sections import write_section

        slug = f"{args.arch}_{width}x{height}"
        write_section(f"<!-- bench_cpu:{slug}:start -->", f"<!-- bench_cpu:{slug}:end -->",
                      f"CPU peers: {args.arch} at {width}x{height}", lines)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
