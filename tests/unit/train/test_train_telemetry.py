"""What a Ray Train worker records as Ray metrics after each step (fake metric classes).

tests/integration/train/test_ray_train_cluster.py scrapes the real series from the nodes.
"""
import pytest

from s2s.train import telemetry


class FakeMetric:
    def __init__(self, name, description="", tag_keys=()):
        self.name, self.tag_keys, self.tags, self.values = name, tag_keys, {}, []

    def set_default_tags(self, tags):
        self.tags = tags

    def inc(self, value):
        self.values.append(value)

    set = inc


@pytest.fixture
def recorded(monkeypatch):
    monkeypatch.setattr(telemetry, "Counter", FakeMetric)
    monkeypatch.setattr(telemetry, "Gauge", FakeMetric)
    return telemetry.TrainTelemetry("toy-reverse", rank=1)


def test_each_step_adds_its_tokens_and_sets_the_window_rate(recorded):
    recorded.record_step(tokens=300, window_tokens=300, window_seconds=0.5)
    recorded.record_step(tokens=100, window_tokens=400, window_seconds=1.0)
    assert recorded.tokens.name == "s2s_train_tokens" and recorded.tokens.values == [300, 100]
    assert recorded.tokens_per_second.name == "s2s_train_tokens_per_second"
    assert recorded.tokens_per_second.values == [600.0, 400.0]


def test_series_are_tagged_with_run_and_rank(recorded):
    for metric in (recorded.tokens, recorded.tokens_per_second):
        assert metric.tag_keys == ("run", "rank") and metric.tags == {"run": "toy-reverse", "rank": "1"}


def test_an_empty_window_records_no_rate(recorded):
    recorded.record_step(tokens=0, window_tokens=0, window_seconds=0.0)
    assert recorded.tokens.values == [] and recorded.tokens_per_second.values == []
