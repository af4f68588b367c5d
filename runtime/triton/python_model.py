"""The python-backend ``model.py`` of every generated python model (copied there as is).

Triton's python backend runs Python in isolated mode, so the runtime cannot come from
PYTHONPATH: the generator copies it beside this file as ``edgercnn_runtime``, and this file puts
its own folder on ``sys.path``. It imports that runtime and Triton's utilities, nothing else.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

import triton_python_backend_utils as pb_utils  # noqa: E402  (only exists inside tritonserver)
from edgercnn_runtime.errors import EdgercnnError  # noqa: E402
from edgercnn_runtime.triton.server_models import ServerModel  # noqa: E402


class TritonPythonModel:
    """Triton's entry points, handed to ``ServerModel`` (role, batching and errors live there)."""

    def initialize(self, args: dict[str, Any]) -> None:
        try:
            self.model = ServerModel(pb_utils, args, _HERE)
        except EdgercnnError as exc:  # one line in the server log, not a traceback
            raise pb_utils.TritonModelException(str(exc)) from None

    def execute(self, requests: list[Any]) -> list[Any]:
        return self.model.execute(requests)

    def finalize(self) -> None:
        self.model.finalize()
