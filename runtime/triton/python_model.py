"""The python-backend ``model.py`` of every generated python model (copied there as is).

Triton's python backend runs Python in isolated mode, so the runtime cannot come from
PYTHONPATH: the generator copies it beside this file as ``edgercnn_runtime``, and ``initialize``
puts this file's folder on ``sys.path``. It imports that runtime and Triton's utilities (which
exist only inside tritonserver, hence imported there, not at module level), nothing else.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


class TritonPythonModel:
    """Triton's entry points, handed to ``ServerModel`` (role, batching and errors live there)."""

    def initialize(self, args: dict[str, Any]) -> None:
        here = Path(__file__).resolve().parent
        if str(here) not in sys.path:
            sys.path.insert(0, str(here))
        import triton_python_backend_utils as pb_utils
        from edgercnn_runtime.errors import EdgercnnError
        from edgercnn_runtime.triton.server_models import ServerModel

        try:
            self.model = ServerModel(pb_utils, args, here)
        except EdgercnnError as exc:  # one line in the server log, not a traceback
            raise pb_utils.TritonModelException(str(exc)) from None

    def execute(self, requests: list[Any]) -> list[Any]:
        return self.model.execute(requests)

    def finalize(self) -> None:
        self.model.finalize()
