"""The streaming config: defaults, validation messages that name the key, Serve files."""
import pickle
from pathlib import Path

import pytest

from s2s.stream.config import StreamConfigError, load_serve_file, stream_config_from_dict

REPO = Path(__file__).resolve().parents[3]


def route(**overrides):
    base = {"name": "en-fr", "input_topic": "en", "output_topic": "fr", "model": "runs/bible-en-fr/best"}
    return {**base, **overrides}


def test_minimal_config_gets_defaults():
    config = stream_config_from_dict({"routes": [route()]})
    assert config.kafka.delivery == "at_least_once" and not config.kafka.exactly_once
    assert config.routes[0].task == "translation"
    assert config.input_topics() == ["en"]
    assert config.all_topics() == ["en", "fr", "s2s-dead-letter"]


@pytest.mark.parametrize("args, message", [
    ({"routes": [route()], "kafak": {}}, "unknown config key 'kafak'"),
    ({"routes": [route(colour=1)]}, r"unknown config key 'routes\[en-fr\].colour'"),
    ({"routes": [route()], "kafka": {"delivery": "maybe"}}, "kafka.delivery"),
    ({"routes": [route()], "kafka": {"max_poll_records": 0}}, "kafka.max_poll_records"),
    ({"routes": [route()], "kafka": {"max_in_flight": 10}}, "max_in_flight must be at least"),
    ({"routes": [route()], "kafka": {"flush_timeout_s": 200}}, "flush_timeout_s"),
    ({"routes": [route()], "kafka": {"dead_letter_topic": "bad topic"}}, "dead_letter_topic"),
    ({"routes": [route()], "limits": {"max_bytes": -1}}, "limits.max_bytes"),
    ({"routes": [route()], "ingress": {"drain_timeout_s": 0}}, "ingress.drain_timeout_s"),
    ({"routes": []}, "at least one route"),
    ({"routes": [route(output_topic="en")]}, "must differ"),
    ({"routes": [route(), route(name="b")]}, "share an input_topic and task"),
    ({"routes": [route(), route(name="en-fr", task="summarization")]}, "duplicate route name"),
    ({"routes": [route(task="x")]}, r"routes\[en-fr\].task must be translation or summarization, got 'x'"),
    ({"routes": [route(), route(name="b", input_topic="fr", output_topic="de")]}, "both read and written"),
    ({"routes": [route(name="Bad_Name")]}, r"routes\[Bad_Name\].name must be lowercase letters"),
    ({"routes": [route(loader="no-colon")]}, "loader"),
    ({"routes": [route(device="tpu")]}, "device"),
    ({"routes": [route(max_batch_size=0)]}, "max_batch_size"),
    ({"routes": [{"name": "x", "input_topic": "a"}]}, r"routes\[x\].output_topic is required"),
    ({"routes": [{"input_topic": "a"}]}, r"routes\[0\].name is required"),
    ({"routes": "en"}, "routes must be a list"),
])
def test_invalid_configs_name_the_problem(args, message):
    with pytest.raises(StreamConfigError, match=message):
        stream_config_from_dict(args)


def test_two_tasks_on_one_topic_is_fine():
    config = stream_config_from_dict({"routes": [route(), route(name="man", task="summarization", output_topic="sum")]})
    assert [r.name for r in config.routes] == ["en-fr", "man"]


@pytest.mark.parametrize("name", ["toy.yaml", "en-fr-man.yaml"])
def test_shipped_serve_files_validate(name):
    raw = load_serve_file(REPO / "cluster" / "serve" / name)
    for app in raw["applications"]:
        assert app["import_path"] == "s2s.stream.app:app_builder"
        stream_config_from_dict(app["args"])


def test_serve_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_serve_file(tmp_path / "missing.yaml")
    (tmp_path / "empty.yaml").write_text("proxy_location: Disabled\n")
    with pytest.raises(StreamConfigError, match="applications"):
        load_serve_file(tmp_path / "empty.yaml")


def test_drain_must_fit_in_the_session_timeout():
    with pytest.raises(StreamConfigError, match="drain_timeout_s"):
        stream_config_from_dict({"routes": [route()], "kafka": {"session_timeout_ms": 10_000},
                                 "ingress": {"drain_timeout_s": 6}})


def test_the_worst_case_drain_is_refused_with_its_numbers():
    with pytest.raises(StreamConfigError, match=r"= 6 s \+ 15 s \+ 5000 ms = 26 s, must be under .* \(20 s\)"):
        stream_config_from_dict({"routes": [route()], "kafka": {"session_timeout_ms": 20_000},
                                 "ingress": {"drain_timeout_s": 6}})
    stream_config_from_dict({"routes": [route()], "kafka": {"session_timeout_ms": 27_000},
                             "ingress": {"drain_timeout_s": 6}})


def test_exactly_once_needs_a_transaction_timeout_under_the_flush_timeout():
    with pytest.raises(StreamConfigError, match=r"transaction_timeout_ms \(15000\) must be under kafka.flush_timeout_s"):
        stream_config_from_dict({"routes": [route()], "kafka": {"delivery": "exactly_once",
                                                                "transaction_timeout_ms": 15_000}})
    stream_config_from_dict({"routes": [route()], "kafka": {"transaction_timeout_ms": 15_000}})  # at-least-once


def test_the_decode_limit_must_end_before_the_ingress_gives_up_on_the_call():
    with pytest.raises(StreamConfigError, match=r"routes\[en-fr\].max_decode_s \(90\) \+ 30 s for the health"):
        stream_config_from_dict({"routes": [route(max_decode_s=90)]})
    stream_config_from_dict({"routes": [route(max_decode_s=89)]})


def test_the_config_pickles_as_serve_hands_it_to_replicas():
    from ray import cloudpickle

    config = stream_config_from_dict({
        "routes": [route(autoscaling={"max_replicas": 3}, task="translate")],
        "kafka": {"security": {"security_protocol": "SSL", "ssl_cafile": "/ca.pem"}},
        "ingress": {"tracing": True}})
    assert config.routes[0].task == "translation"  # the old spelling, read as the new one
    for dumps, loads in ((pickle.dumps, pickle.loads), (cloudpickle.dumps, cloudpickle.loads)):
        back = loads(dumps(config))
        assert back == config and back.kafka.security.tls and back.ingress.tracing


def test_a_copy_of_an_autoscaled_route_is_still_valid():
    config = stream_config_from_dict({"routes": [route(autoscaling={"min_replicas": 0})]})
    quarantined = config.routes[0].replace(device="cpu", num_gpus=0.0)  # as app.py makes it
    assert quarantined.autoscaling == config.routes[0].autoscaling and quarantined.device == "cpu"
    with pytest.raises(StreamConfigError, match=r"^routes\[\]\.max_batch_size must be a positive integer, got 0$"):
        config.routes[0].replace(max_batch_size=0)


def test_serve_file_errors_name_the_file_and_the_application(tmp_path):
    from s2s.stream.local import read_apps

    path = tmp_path / "serve.yaml"
    path.write_text("applications:\n  - name: a\n    import_path: s2s.stream.app:app_builder\n"
                    "    args: {routes: [{name: r, input_topic: i, output_topic: o, model: m, device: tpu}]}\n")
    with pytest.raises(StreamConfigError, match=rf"^{path}: applications\[0\].args.routes\[r\].device "
                                                r"must be auto, cpu or cuda\[:N\], got 'tpu'$"):
        read_apps(path)
