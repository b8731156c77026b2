"""Safe defaults: nothing listens beyond loopback unless configured, checkpoints never unpickle
arbitrary objects, and oversized search requests are refused (CLI) or dead-lettered (stream).

    .venv/bin/pytest tests/unit/test_safe_defaults.py -v
"""
from __future__ import annotations

import itertools
import json
import re
import shlex
import threading
from pathlib import Path

import pytest
import torch
import yaml

from s2s.checkpoint import TRAINER_STATE, CheckpointError, load_trainer_state
from s2s.cli import main

from .conftest import toy_serve_file

REPO = Path(__file__).resolve().parents[2]


class _OpensAFile:
    """Pickles as a call to open(): what a hostile trainer_state.pt could run on load."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_a_trainer_state_holding_a_pickled_call_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"progress": {"step": 1}, "payload": _OpensAFile(marker)}, tmp_path / TRAINER_STATE)
    with pytest.raises(CheckpointError, match=r"holds more than tensors .*\(io\.open\); refusing to unpickle"):
        load_trainer_state(tmp_path)
    assert not marker.exists()


def test_s2s_serve_starts_ray_without_dashboard_and_serve_without_http(fake_serve_runtime, tmp_path):
    from s2s.stream.local import run_local

    stop = threading.Event()
    stop.set()  # deploy, then stop at once
    assert run_local(toy_serve_file(tmp_path), None, "local", stop) == 0
    assert fake_serve_runtime["ray.init"][0]["include_dashboard"] is False
    assert fake_serve_runtime["serve.start"] == [{"proxy_location": "Disabled"}]  # no HTTP proxy at all
    assert fake_serve_runtime["serve.run"][0]["route_prefix"] is None


@pytest.mark.parametrize("path", sorted((REPO / "cluster" / "serve").glob("*.yaml")), ids=lambda p: p.name)
def test_serve_config_files_open_no_http_port_beyond_loopback(path):
    config = yaml.safe_load(path.read_text())
    host = (config.get("http_options") or {}).get("host", "127.0.0.1")  # Serve's default host
    assert config.get("proxy_location") == "Disabled" or host == "127.0.0.1"


def _ray_start_options(script: Path) -> dict[str, str]:
    """The --option value pairs of the `ray start` command in a shell script."""
    text = script.read_text().replace("\\\n", " ")
    command = re.search(r"^[^#\n]*\bray start (.*)$", text, re.MULTILINE).group(1)  # not in a comment
    words = shlex.split(command, comments=True)
    return {w: words[i + 1] for i, w in enumerate(words[:-1]) if w.startswith("--")}


def test_the_demo_ray_head_binds_its_dashboard_and_node_to_loopback():
    options = _ray_start_options(REPO / "cluster" / "ray" / "head.sh")
    assert options["--dashboard-host"] == "127.0.0.1"
    assert options["--node-ip-address"] == "127.0.0.1"


def test_the_cluster_launchers_head_leaves_the_dashboard_on_loopback():
    """`ray start` binds the dashboard (and its Jobs API, which runs any code sent to it) to
    localhost unless --dashboard-host says otherwise; `ray dashboard` forwards it over SSH."""
    config = yaml.safe_load((REPO / "ray_config.yaml").read_text())
    starts = [command for command in config["head_start_ray_commands"] if "ray start" in command]
    assert starts
    for command in starts:
        host = re.search(r"--dashboard-host[= ](\S+)", command)
        assert host is None or host.group(1) in ("127.0.0.1", "localhost")


def test_translate_refuses_an_absurd_beam_before_loading_the_model(tmp_path, capsys):
    missing_model = tmp_path / "no-model"  # never opened: the option is refused first
    assert main(["translate", "--model", str(missing_model), "--beam", "10000"]) == 2
    assert capsys.readouterr().err.strip() == "s2s: error: --beam must be between 1 and 100, got 10000"
    assert main(["translate", "--model", str(missing_model), "--max-len", "0"]) == 2
    assert "--max-len must be at least 1" in capsys.readouterr().err


def test_a_10000_beam_envelope_is_dead_lettered_with_a_reason():
    from kafka.structs import TopicPartition

    from s2s.stream.config import stream_config_from_dict
    from s2s.stream.headers import ERROR_DETAIL, ERROR_REASON
    from s2s.stream.poll_loop import PollLoop

    from .stream.fakes import FakeConsumer, FakeDelivery, FakeObserver, FakeTranslator, records

    config = stream_config_from_dict({  # default limits: beam <= 16
        "kafka": {"dead_letter_topic": "dlq"},
        "routes": [{"name": "up", "input_topic": "in", "output_topic": "out", "model": "m"}]})
    value = json.dumps({"text": "a b c", "beam": 10_000}).encode()
    consumer = FakeConsumer([records("in", 0, 0, [value])], {TopicPartition("in", 0)})
    delivery, translator = FakeDelivery(), FakeTranslator()
    ticks = itertools.count(start=1000.0, step=1.0)  # every clock read is a second later: all intervals due
    worker = PollLoop(config, translator, lambda: consumer, delivery, FakeObserver(), now=lambda: next(ticks))
    worker._consumer = consumer  # as run() leaves it before its first step
    worker.step()
    [(out, _, _)] = delivery.delivered
    [dead] = out
    headers = dict(dead.headers)
    assert (dead.topic, dead.value) == ("dlq", value)
    assert headers[ERROR_REASON] == b"bad_field"
    assert headers[ERROR_DETAIL] == b"envelope 'beam' must be an integer in 1..16, got 10000"
    assert translator.calls == []  # never reached a model
