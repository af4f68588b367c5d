"""The one command that turns a checkpoint into ONNX files: ``python export.py --help``.

Same as ``edgercnn export``; kept at the top level as the design card asks.
"""

from __future__ import annotations

import sys

from edgercnn.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
