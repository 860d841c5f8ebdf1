"""Ctrl-C and SIGTERM: exceptions a step can clean up after, and the entry points' exit."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from typing import Any

import pytest
from click.testing import CliRunner

from pixel_threshold.runs.cli import command
from pixel_threshold.runs.interrupts import (
    Interrupted,
    exit_status,
    signals_ignored,
    signals_raise,
)


def test_sigterm_raises_a_keyboard_interrupt_only_within_the_block() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted) as caught, signals_raise():
        os.kill(os.getpid(), signal.SIGTERM)
    assert isinstance(caught.value, KeyboardInterrupt)
    assert caught.value.signum == signal.SIGTERM
    assert exit_status(caught.value) == 143
    assert exit_status(KeyboardInterrupt()) == 130
    assert signal.getsignal(signal.SIGTERM) is before


def test_signals_are_ignored_while_saving() -> None:
    with signals_raise(), signals_ignored():
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)


@dataclass(frozen=True, kw_only=True)
class Params:
    """A step for the test."""

    signum: int = field(default=signal.SIGTERM, metadata={"help": "signal to send"})


def _interrupted_step(params: Params) -> Any:
    os.kill(os.getpid(), params.signum)


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_an_interrupted_entry_point_exits_with_the_signal_s_status(
    signum: int, status: int
) -> None:
    done = CliRunner().invoke(command("step", Params, _interrupted_step), ["--signum", str(signum)])
    assert done.exit_code == status
    assert f"step: interrupted by {signal.Signals(signum).name}" in done.output
