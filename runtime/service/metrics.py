"""Health and Prometheus metrics over local HTTP, with the Prometheus client library.

Off unless a port is given, and bound to 127.0.0.1 unless told otherwise: a camera box should not
expose an unauthenticated endpoint by accident. ``/metrics`` is the Prometheus text format;
``/healthz`` answers 200 with a JSON status per stream while the inference loop is making
progress and at least one stream is delivering, 503 otherwise (a supervisor restarts on that).
Counters come from the readers' own stats at scrape time, so the numbers never disagree with the
end-of-run summary.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..errors import UsageError
from .readers import Reader, StreamState

AGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STUCK_S = 60.0  # the loop has had frames waiting this long without finishing a batch: unhealthy


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise UsageError(
            "--metrics-port needs the Prometheus client library: pip install 'edgercnn[service]'"
        ) from None
    return prometheus_client


class ServiceMetrics:
    """The service's Prometheus registry: per-stream counters from the readers, histograms from the loop."""

    def __init__(self, readers: list[Reader], progress: Callable[[], tuple[float, int]]) -> None:
        prom = _prometheus()
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        self.prom = prom
        self.readers = readers
        self.progress = progress
        self.registry = prom.CollectorRegistry()
        self.frame_age = prom.Histogram(
            "edgercnn_frame_age_seconds",
            "Capture to result written, per frame",
            ["stream"],
            buckets=AGE_BUCKETS,
            registry=self.registry,
        )
        self.inference = prom.Histogram(
            "edgercnn_inference_seconds",
            "One batch: preprocess + infer + postprocess",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = prom.Histogram(
            "edgercnn_batch_frames",
            "Frames per inference call",
            buckets=(1, 2, 4, 8, 16, 32),
            registry=self.registry,
        )
        self.processed = prom.Counter(
            "edgercnn_frames_processed_total",
            "Frames whose results were written",
            ["stream"],
            registry=self.registry,
        )

        outer = self

        class _ReaderCollector:
            def collect(self) -> Iterator[Any]:
                read = CounterMetricFamily(
                    "edgercnn_frames_read", "Frames decoded by the reader", labels=["stream"]
                )
                dropped = CounterMetricFamily(
                    "edgercnn_frames_dropped",
                    "Stale frames skipped (a newer one replaced them)",
                    labels=["stream"],
                )
                reconnects = CounterMetricFamily(
                    "edgercnn_reconnects", "Times the stream was reopened", labels=["stream"]
                )
                up = GaugeMetricFamily(
                    "edgercnn_stream_up", "1 while the stream delivers frames", labels=["stream"]
                )
                for reader in outer.readers:
                    stats = reader.stats
                    read.add_metric([reader.stream], stats.read)
                    dropped.add_metric([reader.stream], stats.dropped)
                    reconnects.add_metric([reader.stream], stats.reconnects)
                    up.add_metric([reader.stream], 1.0 if stats.state is StreamState.LIVE else 0.0)
                yield from (read, dropped, reconnects, up)

        self.registry.register(_ReaderCollector())

    def observe_batch(self, seconds: float, frames: int) -> None:
        self.inference.observe(seconds)
        self.batch_size.observe(frames)

    def observe_frame(self, stream: str, age_s: float) -> None:
        self.frame_age.labels(stream=stream).observe(age_s)
        self.processed.labels(stream=stream).inc()

    def health(self) -> tuple[int, dict[str, Any]]:
        """HTTP status and body of ``/healthz``."""
        now = time.monotonic()
        last_batch, waiting = self.progress()
        streams = {}
        for reader in self.readers:
            stats = reader.stats
            age = None if stats.last_frame_at is None else round(now - stats.last_frame_at, 3)
            streams[reader.stream] = {
                "state": stats.state.value,
                "frames": stats.read,
                "dropped": stats.dropped,
                "reconnects": stats.reconnects,
                "seconds_since_frame": age,
                "last_error": stats.last_error or None,
            }
        stuck = waiting > 0 and now - last_batch > STUCK_S
        delivering = any(r.stats.state in (StreamState.LIVE, StreamState.ENDED) for r in self.readers)
        ok = delivering and not stuck
        status = (
            "ok"
            if ok and all(s["state"] in ("live", "ended") for s in streams.values())
            else ("degraded" if ok else "unhealthy")
        )
        return (200 if ok else 503), {"status": status, "inference_stuck": stuck, "streams": streams}

    def render(self) -> tuple[bytes, str]:
        return self.prom.generate_latest(self.registry), self.prom.CONTENT_TYPE_LATEST


class MetricsServer:
    """``/metrics`` and ``/healthz`` on a background thread; ``port`` 0 picks a free one."""

    def __init__(self, metrics: ServiceMetrics, host: str, port: int) -> None:
        self.metrics = metrics

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    body, kind = metrics.render()
                    code = 200
                elif path in ("/healthz", "/health"):
                    code, status = metrics.health()
                    body, kind = json.dumps(status).encode(), "application/json"
                else:
                    code, body, kind = 404, b"not found: try /metrics or /healthz\n", "text/plain"
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        try:
            self.server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise UsageError(
                f"--metrics-port {port}: cannot listen on {host}:{port} ({exc.strerror or exc})"
            ) from None
        self.server.daemon_threads = True
        self.address = f"http://{host}:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="metrics", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
