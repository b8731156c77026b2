"""`s2s serve`'s own loop (s2s/stream/local.py) with Ray and Serve faked: how it stops."""
from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import s2s.stream.local as local

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def python_ctrl_c() -> Iterator[None]:
    """Ctrl-C as Python starts with it (KeyboardInterrupt): an earlier test's Ray Train run
    leaves its own SIGINT handler behind, which aborts a trainer that is long gone."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def fake_ray(monkeypatch) -> Iterator[dict[str, list]]:
    """ray.init/serve.* recorded instead of run; the toy serve file's applications."""
    import ray
    from ray import serve

    import s2s.stream.app as app_module

    calls: dict[str, list] = {"delete": [], "shutdown": []}

    def init(**_kw) -> None:  # what the real one does to SIGTERM in a driver's main thread
        signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(signum))

    previous = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "shutdown", lambda: calls["shutdown"].append("ray"))
    monkeypatch.setattr(serve, "start", lambda **kw: None)
    monkeypatch.setattr(serve, "run", lambda app, **kw: None)
    monkeypatch.setattr(serve, "delete", calls["delete"].append)
    monkeypatch.setattr(serve, "shutdown", lambda: calls["shutdown"].append("serve"))
    monkeypatch.setattr(app_module, "build_app", lambda config: "app")
    monkeypatch.setattr(local, "STATS_EVERY_S", 0.05)
    yield calls
    signal.signal(signal.SIGTERM, previous)


def serve_file(tmp_path: Path) -> Path:
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(yaml.safe_load((REPO / "cluster" / "serve" / "toy.yaml").read_text())))
    return path


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_during_a_serve_call_that_swallows_it_still_stops_the_server(fake_ray, monkeypatch, tmp_path,
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
    assert local.run_local(serve_file(tmp_path), 30, "local") == 0
    assert len(polls) == 1  # stopped at the first signal, not at the 30 s duration
    assert fake_ray["delete"] and fake_ray["shutdown"] == ["serve", "ray"]


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
