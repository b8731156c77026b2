"""`s2s serve`'s own loop (s2s/stream/local.py) with Ray and Serve faked: how it stops."""
from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator

import pytest

import s2s.stream.local as local

from ..conftest import toy_serve_file


@pytest.fixture(autouse=True)
def python_ctrl_c() -> Iterator[None]:
    """Ctrl-C as Python starts with it (KeyboardInterrupt): an earlier test's Ray Train run
    leaves its own SIGINT handler behind, which aborts a trainer that is long gone."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_during_a_serve_call_that_swallows_it_still_stops_the_server(fake_serve_runtime, monkeypatch, tmp_path,
                                                                              signum):
    polls = []

    def stats_swallowing_interrupts(name):
        """What a Serve handle call did with a Ctrl-C that landed inside it: nothing."""
        polls.append(name)
        try:
            os.kill(os.getpid(), signum)
        except KeyboardInterrupt:
            pass
        return []

    monkeypatch.setattr(local, "app_stats", stats_swallowing_interrupts)
    monkeypatch.setattr(local, "STATS_EVERY_S", 0.05)
    assert local.run_local(toy_serve_file(tmp_path), 30, "local") == 0
    assert len(polls) == 1  # stopped at the first signal, not at the 30 s duration
    assert fake_serve_runtime["serve.delete"] and fake_serve_runtime["shutdown"] == ["serve", "ray"]


def test_the_previous_signal_handlers_are_back_after_the_server_stops():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with local.stop_on_signals(threading.Event()):
        assert signal.getsignal(signal.SIGINT) not in before
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_after_the_first_signal_a_second_ctrl_c_interrupts_again():
    stop = threading.Event()
    with local.stop_on_signals(stop):
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.is_set()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
