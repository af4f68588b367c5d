"""The one command that turns a checkpoint into ONNX files: ``python export.py --help``.

Same as ``edgercnn export``; kept at the top level as the design card asks. (``import export``
here resolves to the ``export/`` package next to this file, not to this script.)
"""

from __future__ import annotations

import sys

from export.cli import main

if __name__ == "__main__":
    sys.exit(main())
