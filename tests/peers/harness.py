"""Start and stop the RTSP peer from the tests: a real server process on a free loopback port."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER = Path(__file__).with_name("rtsp_server.py")


def rtsp_available() -> str | None:
    """None when the GStreamer RTSP server can run here, else why not (install_test_peers.sh)."""
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} not found"
    probe = subprocess.run(
        [
            SYSTEM_PYTHON,
            "-c",
            "import gi; gi.require_version('GstRtspServer', '1.0'); "
            "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
            "assert Gst.ElementFactory.find('x264enc'), 'x264enc'",
        ],
        capture_output=True,
        text=True,
    )
    return None if probe.returncode == 0 else (probe.stderr.strip().splitlines() or ["unknown"])[-1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RtspServer:
    """One server process; ``kill``/``start`` to make it die and return on the same port."""

    def __init__(
        self,
        mounts: list[str],
        size: str = "320x240",
        fps: int = 10,
        video: str | None = None,
        port: int | None = None,
        passthrough: bool = False,
    ) -> None:
        self.mounts = mounts
        self.size = size
        self.fps = fps
        self.video = video
        self.passthrough = passthrough
        self.port = port or free_port()
        self.proc: subprocess.Popen[str] | None = None

    def url(self, mount: str) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{mount}"

    def start(self, timeout: float = 30.0) -> RtspServer:
        cmd = [
            SYSTEM_PYTHON,
            str(SERVER),
            "--port",
            str(self.port),
            "--size",
            self.size,
            "--fps",
            str(self.fps),
        ]
        for mount in self.mounts:
            cmd += ["--mount", mount]
        if self.video:
            cmd += ["--video", self.video]
        if self.passthrough:
            cmd += ["--passthrough"]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        env["PATH"] = "/usr/bin:/bin"
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            err = self.proc.stderr.read() if self.proc.stderr else ""
            self.kill()
            raise RuntimeError(f"RTSP server did not start: {line!r} {err[-500:]}")
        while time.monotonic() < deadline:  # listening: a TCP connect succeeds
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise RuntimeError("RTSP server never listened")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def pause(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGCONT)

    def __enter__(self) -> RtspServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.resume()
        self.kill()


def ffmpeg_path() -> str | None:
    return shutil.which("ffmpeg")
