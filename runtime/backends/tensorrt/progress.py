"""A tqdm progress bar per TensorRT build phase, driven by ``trt.IProgressMonitor``.

An engine build takes minutes on a Jetson with nothing on screen; TensorRT reports nested phases
("Building engine" > "Tactic selection" > ...) with step counts from several threads. ``PhaseBars``
turns those calls into nested bars and is plain Python (tested here); ``make_progress_monitor``
wraps it in the TensorRT interface when TensorRT exists.

Ctrl-C: TensorRT calls the monitor from C++, and its Python trampoline swallows any exception a
callback raises, so a ``KeyboardInterrupt`` there would only make the build "fail". Instead
``build_cancellable`` turns SIGINT into a flag for the duration of the build; the next
``step_complete`` returns False, TensorRT stops and returns no engine, and the flag becomes
``Interrupted`` (exit 130) rather than "could not build".
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import IO, TYPE_CHECKING, Any, TypeVar

from tqdm import tqdm

from ...errors import Interrupted

if TYPE_CHECKING:
    import tensorrt as trt

T = TypeVar("T")


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


@contextmanager
def sigint_cancels(bars: PhaseBars) -> Iterator[None]:
    """While active, Ctrl-C sets ``bars.cancelled`` instead of raising (main thread only; elsewhere
    signals cannot be handled and nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        if not bars.cancelled:
            print("\ninterrupt: stopping the build at TensorRT's next step", file=sys.stderr)
        bars.cancel()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        # None: the previous handler was installed outside Python; the default is the closest
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


def build_cancellable(bars: PhaseBars, build: Callable[[], T], what: str) -> T:
    """Run ``build`` (TensorRT's ``build_serialized_network``) with Ctrl-C as a cancel flag; raise
    ``Interrupted`` (exit 130) when it was pressed, whatever the build returned."""
    with sigint_cancels(bars):
        result = build()
    if bars.cancelled:
        raise Interrupted(f"{what}: interrupted; no engine written")
    return result


def make_progress_monitor(bars: PhaseBars) -> trt.IProgressMonitor:
    """A ``trt.IProgressMonitor`` forwarding to ``bars`` (call only where TensorRT is installed)."""
    import tensorrt as trt

    class _Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        # The trampoline swallows exceptions: any one (Ctrl-C included) becomes a cancel request.
        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            try:
                bars.phase_start(phase_name, parent_phase, num_steps)
            except BaseException:
                bars.cancel()

        def step_complete(self, phase_name: str, step: int) -> bool:
            try:
                return bars.step_complete(phase_name, step)
            except BaseException:
                bars.cancel()
                return False

        def phase_finish(self, phase_name: str) -> None:
            try:
                bars.phase_finish(phase_name)
            except BaseException:
                bars.cancel()

    return _Monitor()
