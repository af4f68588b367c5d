"""A real RTSP server for the tests and the service benchmark: GStreamer's gst-rtsp-server.

Run by the system Python (Debian's python3-gi has the GObject bindings; the project's venv does
not): ``/usr/bin/python3 tests/peers/rtsp_server.py --port P --mount cam1 --mount cam2``. Each
mount serves a live H.264 stream of a moving test pattern (or a looped video file with
``--video``), shared by its clients. Prints ``ready`` once it listens. Kill it (SIGKILL) to test a
dead server, SIGSTOP it to test a stalled one.
"""

from __future__ import annotations

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

ENCODE = (
    "x264enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} bframes=0 threads=1 "
    "! video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 config-interval=1"
)


def pattern_launch(width: int, height: int, fps: int, pattern: str) -> str:
    caps = f"video/x-raw,width={width},height={height},framerate={fps}/1"
    return (
        f"( videotestsrc is-live=true pattern={pattern} ! {caps} ! videoconvert ! {ENCODE.format(gop=fps)} )"
    )


def video_launch(path: str, width: int, height: int, fps: int) -> str:
    # a live, paced stream from a file: decoded, rescaled and re-encoded so that every mount runs
    # at the rate asked; looping is done by restarting the media when it ends (see below)
    caps = f"video/x-raw,width={width},height={height},framerate={fps}/1"
    return (
        f"( filesrc location={path} ! decodebin ! videoconvert ! videoscale ! videorate ! {caps} "
        f"! identity sync=true ! {ENCODE.format(gop=fps)} )"
    )


def passthrough_launch(path: str) -> str:
    # an H.264 MP4 served as it is (no re-encoding: the server costs almost no CPU), paced by the
    # server's clock; the file must be long enough for the run (benchmarks make a looped one)
    return (
        f"( filesrc location={path} ! qtdemux ! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 )"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mount", action="append", default=[], help="mount point name (repeatable)")
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--video", default=None, help="serve this video file instead of a test pattern")
    parser.add_argument(
        "--passthrough", action="store_true", help="serve --video (H.264 MP4) without re-encoding"
    )
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    patterns = ["ball", "smpte", "snow", "circular", "pinwheel", "gamut"]
    for i, name in enumerate(args.mount or ["cam"]):
        factory = GstRtspServer.RTSPMediaFactory()
        if args.video and args.passthrough:
            factory.set_launch(passthrough_launch(args.video))
        elif args.video:
            factory.set_launch(video_launch(args.video, width, height, args.fps))
        else:
            factory.set_launch(pattern_launch(width, height, args.fps, patterns[i % len(patterns)]))
        factory.set_shared(True)
        factory.set_eos_shutdown(False)
        mounts.add_factory(f"/{name}", factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
        return 1
    print("ready", flush=True)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
