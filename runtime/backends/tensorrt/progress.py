"""A tqdm progress bar per TensorRT build phase, driven by ``trt.IProgressMonitor``.

An engine build takes minutes on a Jetson with nothing on screen; TensorRT reports nested phases
("Building engine" > "Tactic selection" > ...) with step counts from several threads. ``PhaseBars``
turns those calls into nested bars and is plain Python (tested here); ``make_progress_monitor``
wraps it in the TensorRT interface when TensorRT exists.
"""

from __future__ import annotations

import sys
import threading
from typing import IO, TYPE_CHECKING, Any

from tqdm import tqdm

if TYPE_CHECKING:
    import tensorrt as trt


class PhaseBars:
    """One bar per active phase, indented under its parent; thread-safe; can cancel the build."""

    def __init__(self, stream: IO[str] | None = None, disable: bool = False) -> None:
        self._bars: dict[str, tqdm[Any]] = {}
        self._depth: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stream = stream if stream is not None else sys.stderr
        self._disable = disable
        self.cancelled = False
        self.finished: list[str] = []

    def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
        with self._lock:
            depth = self._depth.get(parent_phase, -1) + 1 if parent_phase else 0
            self._depth[phase_name] = depth
            old = self._bars.pop(phase_name, None)
            if old is not None:
                old.close()
            self._bars[phase_name] = tqdm(
                total=num_steps,
                desc="  " * depth + phase_name,
                position=depth,
                leave=depth == 0,
                file=self._stream,
                disable=self._disable,
                dynamic_ncols=True,
            )

    def step_complete(self, phase_name: str, step: int) -> bool:
        """Move the phase's bar to ``step + 1``; False asks TensorRT to stop (after ``cancel``)."""
        with self._lock:
            bar = self._bars.get(phase_name)
            if bar is not None:
                bar.update(max(step + 1 - bar.n, 0))
            return not self.cancelled

    def phase_finish(self, phase_name: str) -> None:
        with self._lock:
            bar = self._bars.pop(phase_name, None)
            self._depth.pop(phase_name, None)
            if bar is not None:
                if bar.total is not None:
                    bar.update(max(bar.total - bar.n, 0))
                bar.close()
            self.finished.append(phase_name)

    def snapshot(self) -> dict[str, tuple[int, int | None]]:
        """(steps done, steps) of each active phase."""
        with self._lock:
            return {name: (int(bar.n), bar.total) for name, bar in self._bars.items()}

    def cancel(self) -> None:
        """Ctrl-C during a build: the next ``step_complete`` tells TensorRT to stop."""
        self.cancelled = True

    def close(self) -> None:
        with self._lock:
            for bar in self._bars.values():
                bar.close()
            self._bars.clear()


def make_progress_monitor(bars: PhaseBars) -> trt.IProgressMonitor:
    """A ``trt.IProgressMonitor`` forwarding to ``bars`` (call only where TensorRT is installed)."""
    import tensorrt as trt

    class _Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            bars.phase_start(phase_name, parent_phase, num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            return bars.step_complete(phase_name, step)

        def phase_finish(self, phase_name: str) -> None:
            bars.phase_finish(phase_name)

    return _Monitor()
