"""File helpers every side shares: the media suffixes the commands accept, hashing, atomic writes.

One list of image and video suffixes, so that a folder that ``edgercnn run`` reads is also one
that ``calibrate``, ``parity`` and the engine check read; one SHA-256 (engines, ONNX files,
plugin libraries, checkpoints, calibration images); one write that a crash never leaves half
done. Standard library only: ``runtime/`` must also run alone on a camera.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

# Everything OpenCV decodes that a command was ever meant to take (lower case, with the dot).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pnm")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".ts", ".flv", ".wmv")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks so a large engine or checkpoint needs little memory."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as stream:
        while block := stream.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_bytes(target: Path, payload: bytes) -> None:
    """Write to a temporary file beside ``target``, sync it, then rename it over: all or nothing."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
