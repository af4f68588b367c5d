"""The service against a real RTSP server on loopback: reconnect, stall, batching, isolation, soak, stop."""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path

import cv2
import pytest

from tests.peers.harness import RtspServer, free_port
from tests.runtime.service.helpers import get, records, start_run, stop, wait_for

pytestmark = pytest.mark.usefixtures("rtsp_peer")


def _metrics_url(proc, timeout: float = 60.0) -> str:
    """The address the run prints on its metrics line (it was asked for any free port)."""
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        match = re.search(r"metrics on (http://\S+)/metrics", line)
        if match:
            return match.group(1)
        if not line and proc.poll() is not None:
            break
    raise AssertionError("the run never printed its metrics address")


def _metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = (
        rf"^{re.escape(name)}{{{re.escape(wanted)}}} (\S+)$" if labels else rf"^{re.escape(name)} (\S+)$"
    )
    match = re.search(pattern, text, re.MULTILINE)
    assert match, f"{name} {labels} not in metrics"
    return float(match.group(1))


def test_a_killed_server_that_returns_after_5_s_is_reconnected_and_results_stay_valid(model, tmp_path):
    out = tmp_path / "out"
    with RtspServer(["cam"]) as server:
        proc = start_run(
            [
                "--model",
                str(model),
                "--source",
                server.url("cam"),
                "--out",
                str(out),
                "--stall-timeout",
                "3",
                "--metrics-port",
                "0",
            ]
        )
        base = _metrics_url(proc)
        jsonl = out / "detections.jsonl"
        wait_for(lambda: len(records(jsonl)) >= 10, 60, "first frames", proc)
        server.kill()
        time.sleep(5.0)
        status, body = get(f"{base}/healthz")
        health = json.loads(body)
        assert (
            status == 503 and health["streams"]["127.0.0.1_" + str(server.port) + "_cam"]["state"] != "live"
        )
        server.start()
        back = time.time()
        after = wait_for(
            lambda: [r for r in records(jsonl) if r["timestamp"] > back], 30, "frames after return", proc
        )
        reconnect_s = min(r["timestamp"] for r in after) - back
        wait_for(lambda: get(f"{base}/healthz")[0] == 200, 10, "healthy again", proc)
        metrics = get(f"{base}/metrics")[1].decode()
        code, err = stop(proc)
    assert code == 130, err
    assert reconnect_s < 5.0, f"first frame {reconnect_s:.2f} s after the server returned"
    assert "reconnected: " in err and "reconnecting in" in err
    name = f"127.0.0.1_{server.port}_cam"
    assert _metric(metrics, "edgercnn_reconnects_total", stream=name) >= 1
    lines = records(jsonl)
    before = [r for r in lines if r["timestamp"] < back]
    assert len(before) >= 10 and len(lines) > len(before)
    assert (out / "videos" / f"{name}.annotated.mp4").exists()  # closed validly on SIGTERM
    assert len(json.loads((out / "results.coco.json").read_text())) == sum(
        len(r["detections"]) for r in lines
    )


def test_a_paused_server_is_detected_as_a_stall_and_reopened(model, tmp_path):
    out = tmp_path / "out"
    with RtspServer(["cam"]) as server:
        proc = start_run(
            [
                "--model",
                str(model),
                "--source",
                server.url("cam"),
                "--out",
                str(out),
                "--stall-timeout",
                "2",
                "--no-video",
                "--no-coco",
            ]
        )
        jsonl = out / "detections.jsonl"
        wait_for(lambda: len(records(jsonl)) >= 5, 60, "first frames", proc)
        server.pause()
        time.sleep(6.0)  # three stall timeouts
        server.resume()
        resumed = time.time()
        wait_for(
            lambda: any(r["timestamp"] > resumed for r in records(jsonl)), 40, "frames after resume", proc
        )
        code, err = stop(proc)
    assert code == 130, err
    assert re.search(r"stalled \(no frame for \d+\.\d s\)|stream ended or errored", err), err
    assert "reconnected: " in err


def test_two_live_streams_are_both_processed_in_shared_batches(model, tmp_path):
    out = tmp_path / "out"
    with RtspServer(["a", "b"]) as server:
        proc = start_run(
            [
                "--model",
                str(model),
                "--source",
                server.url("a"),
                server.url("b"),
                "--out",
                str(out),
                "--no-video",
                "--batch-timeout-ms",
                "150",
                "--metrics-port",
                "0",
            ]
        )
        base = _metrics_url(proc)
        jsonl = out / "detections.jsonl"
        both = {f"127.0.0.1_{server.port}_{m}" for m in "ab"}
        wait_for(lambda: {r["stream"] for r in records(jsonl)} == both, 60, "frames from both streams", proc)
        first = get(f"{base}/metrics")[1].decode()  # from here on both streams deliver
        time.sleep(4.0)
        status, body = get(f"{base}/healthz")
        metrics = get(f"{base}/metrics")[1].decode()
        code, err = stop(proc)
    assert code == 130, err
    assert status == 200 and json.loads(body)["status"] == "ok"
    batches = _metric(metrics, "edgercnn_batch_frames_count") - _metric(first, "edgercnn_batch_frames_count")
    frames = _metric(metrics, "edgercnn_batch_frames_sum") - _metric(first, "edgercnn_batch_frames_sum")
    assert frames >= 60 and frames / batches > 1.7, f"{frames} frames in {batches} batches"
    lines = records(jsonl)
    assert all(sum(r["stream"] == name for r in lines) >= 30 for name in both)


def test_a_dead_stream_beside_a_live_one_does_not_lower_its_frame_rate(model, tmp_path):
    out = tmp_path / "out"
    dead = f"rtsp://127.0.0.1:{free_port()}/nobody"
    with RtspServer(["live"], fps=10) as server:
        proc = start_run(
            [
                "--model",
                str(model),
                "--source",
                dead,
                server.url("live"),
                "--out",
                str(out),
                "--no-video",
                "--stall-timeout",
                "2",
            ]
        )
        jsonl = out / "detections.jsonl"
        live = f"127.0.0.1_{server.port}_live"
        wait_for(lambda: len(records(jsonl)) >= 10, 60, "live frames", proc)
        time.sleep(8.0)
        code, err = stop(proc)
    assert code == 130, err
    stamps = [r["timestamp"] for r in records(jsonl) if r["stream"] == live]
    window = [t for t in stamps if t >= stamps[-1] - 6.0]
    rate = (len(window) - 1) / (window[-1] - window[0])
    assert rate >= 9.0, f"live stream at {rate:.2f} FPS beside a dead one (source: 10 FPS)"
    assert "cannot open" in err and "retrying in" in err


def test_a_stream_that_fails_for_good_exits_non_zero_with_a_per_stream_summary(model, tmp_path):
    dead = f"rtsp://127.0.0.1:{free_port()}/nobody"
    proc = start_run(
        [
            "--model",
            str(model),
            "--source",
            dead,
            "--reconnect-attempts",
            "2",
            "--reconnect-initial",
            "0.1",
            "--stall-timeout",
            "2",
        ]
    )
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "gave up after 2 failed attempts" in err and "1 stream(s) failed for good" in err
    assert re.search(r"\| 127\.0\.0\.1_\d+_nobody \| 0 \| 0 \| 0 \| 0 \| failed", err), err
    assert "Traceback" not in err


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise AssertionError("no VmRSS")


def test_a_soak_of_3000_frames_over_two_streams_keeps_memory_flat(model, tmp_path):
    out = tmp_path / "out"
    with RtspServer(["a", "b"], size="160x120", fps=50) as server:
        proc = start_run(
            [
                "--model",
                str(model),
                "--source",
                server.url("a"),
                server.url("b"),
                "--out",
                str(out),
                "--no-coco",
            ]
        )
        jsonl = out / "detections.jsonl"
        samples: list[tuple[int, float]] = []

        def progressed() -> bool:
            count = sum(1 for _ in jsonl.open()) if jsonl.exists() else 0
            samples.append((count, _rss_mb(proc.pid)))
            time.sleep(0.5)
            return count >= 3000

        wait_for(progressed, 240, "3000 frames", proc)
        code, err = stop(proc, signal.SIGINT)
    assert code == 130, err
    warm = [rss for count, rss in samples if count >= 500]
    assert len(warm) >= 10
    growth = max(warm[-5:]) - min(warm[:5])
    assert growth < 15.0, f"RSS grew {growth:.1f} MB from frame 500 to 3000: {samples[::10]}"
    lines = records(jsonl)
    assert len(lines) >= 3000
    for name in ("a", "b"):
        stream = f"127.0.0.1_{server.port}_{name}"
        frames = [r["frame"] for r in lines if r["stream"] == stream]
        assert len(frames) > 1000 and frames == sorted(frames)
        assert cv2.VideoCapture(str(out / "videos" / f"{stream}.annotated.mp4")).read()[0]
