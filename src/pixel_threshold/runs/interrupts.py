"""Ctrl-C and SIGTERM as exceptions, so that a step can save its work and end its run KILLED.

Python turns SIGINT (Ctrl-C) into ``KeyboardInterrupt``; ``signals_raise`` makes
SIGTERM (what ``mlflow run`` sends its command when it is interrupted, and what
schedulers send) raise ``Interrupted``, a ``KeyboardInterrupt``, too. Both escape
``except Exception`` blocks, so library code on the way cannot swallow them.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

STOPPING = (signal.SIGINT, signal.SIGTERM)
Handler = Callable[[int, FrameType | None], object] | signal.Handlers


class Interrupted(KeyboardInterrupt):
    """A stopping signal (SIGTERM) received while a step ran."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_status(error: KeyboardInterrupt) -> int:
    """The shell's status for a process stopped by the signal: 128 + its number."""
    signum = error.signum if isinstance(error, Interrupted) else signal.SIGINT
    return 128 + int(signum)


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


@contextmanager
def signals_raise() -> Iterator[None]:
    """Within the block, SIGTERM raises ``Interrupted`` (SIGINT raises KeyboardInterrupt)."""
    with _handlers((signal.SIGTERM,), _raise):
        yield


@contextmanager
def signals_ignored() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM are ignored: for saving what an interrupted
    step finished, which a second signal (``mlflow run`` sends SIGTERM after the
    user's Ctrl-C) must not cut short."""
    with _handlers(STOPPING, signal.SIG_IGN):
        yield


@contextmanager
def _handlers(signums: tuple[signal.Signals, ...], handler: Handler) -> Iterator[None]:
    """Install ``handler`` for ``signums``, then restore the previous handlers; a no-op
    outside the main thread, where Python cannot install signal handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, handler) for signum in signums}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
