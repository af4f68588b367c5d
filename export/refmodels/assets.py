"""Where the bundled assets (reference models, sample video, calibration set) are, however installed.

In a source checkout they sit in the repository's top-level ``models/``, ``samples/`` and
``calib_data/``; a wheel carries the same folders as ``edgercnn/assets/`` (pyproject.toml maps
them). Looking in both, in that order of likelihood, is what lets ``edgercnn demo`` run from
either without a path written relative to this file's depth.
"""

from __future__ import annotations

from pathlib import Path

import edgercnn

ASSET_FOLDERS = ("models", "samples", "calib_data")


def asset_roots() -> list[Path]:
    """Folders that may hold ``models/``, ``samples/``, ``calib_data/``: the wheel's, then the checkout's."""
    package = Path(edgercnn.__file__).resolve().parent
    return [package / "assets", package.parent]


def asset_path(folder: str, *parts: str) -> Path:
    """``asset_path("models", "ref_maskrcnn.json")``: the first existing match, else the checkout's path.

    Returning a path that does not exist (rather than raising) leaves the caller's own
    one-line "not found" message in charge, which names what is missing.
    """
    if folder not in ASSET_FOLDERS:
        raise ValueError(f"unknown asset folder {folder!r} (one of {', '.join(ASSET_FOLDERS)})")
    candidates = [root / folder / Path(*parts) for root in asset_roots()]
    return next((c for c in candidates if c.exists()), candidates[-1])
