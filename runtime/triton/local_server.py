"""A real ``tritonserver`` on this machine's CPU, from the ``nvidia-pytriton`` wheel.

That wheel carries the server binary and its python backend (PyTriton's own Python layer is not
used). The python backend runs its stub in isolated mode with the first ``python3`` on PATH, and
that Python needs numpy < 2 (the stub's tensors are corrupted with numpy 2), so the server gets
its own small virtual environment, built once and cached under ``~/.cache/edgercnn`` keyed by its
requirements. The server is started in its own session and stopped by signalling the whole
process group, so no ``triton_python_backend_stub`` or shared-memory region outlives it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BackendError

SERVING_REQUIREMENTS = (
    "numpy>=1.24,<2",
    "onnxruntime>=1.18",
    "opencv-python-headless>=4.8,<4.11",
)
PYTRITON = "nvidia-pytriton==0.7.0"  # installed without its Python dependencies: only the server is used
CACHE_ENV = "EDGERCNN_CACHE"


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "edgercnn"))


def serving_env_key() -> str:
    text = "\n".join([sys.version.split()[0], PYTRITON, *SERVING_REQUIREMENTS])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ServingEnv:
    """The cached virtual environment: its Python, the server binary and the backends folder."""

    root: Path

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def tritonserver_dir(self) -> Path:
        return (
            self.root
            / "lib"
            / f"python{sys.version_info.major}.{sys.version_info.minor}"
            / ("site-packages/pytriton/tritonserver")
        )

    @property
    def tritonserver(self) -> Path:
        return self.tritonserver_dir / "bin" / "tritonserver"

    @property
    def backends(self) -> Path:
        return self.tritonserver_dir / "backends"


def _run(cmd: list[str], what: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise BackendError(f"building the Triton serving environment: {what} failed: {' | '.join(tail)}")


def serving_env() -> ServingEnv:
    """The serving environment, built on first use (about half a minute, needs the package index)."""
    root = cache_root() / f"triton-serving-{serving_env_key()}"
    env = ServingEnv(root)
    if (root / ".complete").exists():
        return env
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f"{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test workers: one builds, the others wait
        if (root / ".complete").exists():
            return env
        shutil.rmtree(root, ignore_errors=True)
        base_python = getattr(sys, "_base_executable", sys.executable)
        _run([base_python, "-m", "venv", str(root)], "python -m venv")
        pip = [str(root / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        _run([*pip, "--no-deps", PYTRITON], f"pip install {PYTRITON}")
        _run([*pip, *SERVING_REQUIREMENTS], "pip install " + " ".join(SERVING_REQUIREMENTS))
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        stub = env.tritonserver_dir / "python_backend_stubs" / version / "triton_python_backend_stub"
        if not stub.exists():
            raise BackendError(f"{PYTRITON} has no python backend stub for Python {version}")
        shutil.copy2(stub, env.backends / "python" / "triton_python_backend_stub")
        (root / ".complete").write_text("ok\n")
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LocalServer:
    """One running ``tritonserver`` on loopback; ``stop`` ends it and everything it started."""

    repository: Path
    log_path: Path
    http_port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"grpc://127.0.0.1:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self, env: ServingEnv | None = None, timeout: float = 180.0) -> LocalServer:
        env = env or serving_env()
        run_env = dict(os.environ)
        run_env.pop("PYTHONPATH", None)
        run_env["PATH"] = f"{env.bin}{os.pathsep}{run_env.get('PATH', '')}"
        base_lib = Path(sys.base_prefix) / "lib"
        run_env["LD_LIBRARY_PATH"] = f"{base_lib}{os.pathsep}{run_env.get('LD_LIBRARY_PATH', '')}"
        cmd = [
            str(env.tritonserver),
            f"--model-repository={self.repository}",
            f"--backend-directory={env.backends}",
            f"--http-port={self.http_port}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-port={self.metrics_port}",
            "--http-address=127.0.0.1",
            "--grpc-address=127.0.0.1",
            "--allow-metrics=true",
            "--allow-gpu-metrics=false",
            "--log-verbose=0",
        ]
        self.log_file = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            cmd, stdout=self.log_file, stderr=subprocess.STDOUT, env=run_env, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise BackendError(f"tritonserver exited with {self.process.returncode}: {self.log_tail()}")
            if self.ready():
                return self
            time.sleep(0.25)
        self.stop()
        raise BackendError(f"tritonserver not ready after {timeout:.0f} s: {self.log_tail()}")

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.http_url}/v2/health/ready", timeout=1) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False

    def log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(text.strip().splitlines()[-lines:])

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM to the process group (server and its stubs), SIGKILL after ``timeout``."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        # stubs are in the same group; a graceful stop lets them go first, a kill takes them too
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.log_file.close()
