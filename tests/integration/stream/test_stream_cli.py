"""A user's path: `s2s serve --config FILE`, `s2s produce`, `s2s consume`, as subprocesses.

    .venv/bin/pytest tests/integration/stream/test_stream_cli.py -v
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest
import yaml

from s2s.prediction import Translator

from .streams import TopicReader

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

S2S = [sys.executable, "-m", "s2s.cli"]


def serve_file(path, bootstrap: str, topics: dict[str, str], model) -> None:
    args = {"kafka": {"bootstrap": bootstrap, "group_id": f"{topics['in']}-group", "dead_letter_topic": topics["dlq"]},
            "routes": [{"name": "reverse", "input_topic": topics["in"], "output_topic": topics["out"],
                        "model": str(model), "device": "cpu"}]}
    app = {"name": "cli-toy", "route_prefix": None, "import_path": "s2s.stream.app:app_builder", "args": args}
    path.write_text(yaml.safe_dump({"proxy_location": "Disabled", "applications": [app]}))


def interrupt(server: subprocess.Popen, grace_s: float = 120) -> str:
    """Ctrl-C the server (drain, delete the app, stop Ray); its whole output. A server still up
    after ``grace_s`` is killed and the test fails with what it printed."""
    server.send_signal(signal.SIGINT)
    try:
        return server.communicate(timeout=grace_s)[0]
    except subprocess.TimeoutExpired:
        server.kill()
        log = server.communicate()[0]
        pytest.fail(f"s2s serve still running {grace_s:.0f} s after Ctrl-C; it printed:\n{log[-6000:]}")


def test_serve_produce_consume_by_hand(tmp_path, kafka_bootstrap, topic_factory, toy_model):
    topics = {role: topic_factory(partitions=3, suffix=role) for role in ("in", "out", "dlq")}
    config = tmp_path / "serve.yaml"
    serve_file(config, kafka_bootstrap, topics, toy_model)
    server = subprocess.Popen([*S2S, "serve", "--config", str(config), "--duration", "240"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = ["k1\t1 2 a", "k2\tb c 3 d", "k3\t{\"text\": \"\"}"]
        produced = subprocess.run([*S2S, "produce", "--topic", topics["in"], "--key-sep", "TAB",
                                   "--bootstrap", kafka_bootstrap], input="\n".join(lines) + "\n",
                                  capture_output=True, text=True, timeout=60)
        consumed = produced.returncode == 0 and subprocess.run(
            [*S2S, "consume", "--topic", topics["out"], "--count", "2", "--timeout", "180",
             "--from-beginning", "--headers", "--bootstrap", kafka_bootstrap],
            capture_output=True, text=True, timeout=200)
    finally:
        log = interrupt(server)
    # The server's own output goes with every failure: without it a stall says nothing of why.
    assert produced.returncode == 0, f"{produced.stderr}\ns2s serve printed:\n{log[-4000:]}"
    assert consumed.returncode == 0, f"{consumed.stderr}\ns2s serve printed:\n{log[-4000:]}"
    assert server.returncode == 0, log[-3000:]

    expected = Translator.from_checkpoint(toy_model, device="cpu").best(["1 2 a", "b c 3 d"])
    answers = {}
    for line in consumed.stdout.splitlines():
        key, value, headers = line.split("\t")
        answers[key] = value
        assert json.loads(headers)["s2s-source-topic"] == topics["in"]
    assert answers == {"k1": expected[0], "k2": expected[1]}
    reader = TopicReader(kafka_bootstrap, topics["dlq"])
    dead = reader.read_until(lambda records: len(records) >= 1, timeout_s=30)
    reader.close()  # left open, it polls the deleted topic's metadata through the next tests
    assert [(r.key, dict(r.headers)["s2s-error-reason"]) for r in dead] == [(b"k3", b"empty_text")]
