"""Run ``edgercnn run`` as a real process, as a camera box would, and read what it wrote."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from tests.builders.fixed_onnx import make_tiny_onnx, tiny_config, tiny_outputs
from tests.paths import REPO_ROOT

CLI = "import sys; from edgercnn.cli import main; sys.exit(main(sys.argv[1:]))"


def dynamic_model(folder: Path) -> Path:
    """The tiny fixed-output graph with a dynamic batch: batches of any size across streams."""
    raw = tiny_config(batch="dynamic", detections=6)
    return make_tiny_onnx(folder / "tiny_dynamic.onnx", raw, tiny_outputs(raw, 3, seed=1))


def write_video(path: Path, frames: int, fps: float = 10.0, size: tuple[int, int] = (128, 96)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), (i * 5) % 256, np.uint8))
    writer.release()
    return path


def start_run(args: list[str], cwd: Path = REPO_ROOT) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CLI, "run", *args, "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
    )


def records(jsonl: Path) -> list[dict[str, Any]]:
    """Every line parsed: a torn last line would raise here, which is what the tests want."""
    if not jsonl.exists():
        return []
    return [json.loads(line) for line in jsonl.read_text().splitlines()]


def wait_for(predicate: Any, timeout: float, what: str, proc: subprocess.Popen[str] | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(
                f"run exited ({proc.returncode}) while waiting for {what}: {proc.stderr.read()}"
            )
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM, timeout: float = 60) -> tuple[int, str]:
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
