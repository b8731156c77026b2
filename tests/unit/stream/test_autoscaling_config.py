"""Autoscaling sections of the stream config, and how app.py hands them to Serve."""
import warnings

import pytest
from ray.serve.config import AutoscalingConfig

from s2s.stream import app
from s2s.stream.config import IngressAutoscaling, RouteAutoscaling, StreamConfigError, stream_config_from_dict


def route(**overrides):
    return {"name": "toy", "input_topic": "in", "output_topic": "out", "model": "m", **overrides}


def test_autoscaling_sections_are_parsed_with_defaults():
    config = stream_config_from_dict({"routes": [route(autoscaling={"max_replicas": 4})],
                                      "ingress": {"autoscaling": {"max_replicas": 3, "target_lag": 500}}})
    assert config.ingress.autoscaling == IngressAutoscaling(max_replicas=3, target_lag=500)
    assert config.routes[0].autoscaling == RouteAutoscaling(max_replicas=4)


def test_without_autoscaling_the_fixed_replica_counts_stay():
    config = stream_config_from_dict({"routes": [route(num_replicas=2)], "ingress": {"num_replicas": 3}})
    assert config.ingress.autoscaling is None and config.routes[0].autoscaling is None
    assert app._ingress_replicas(config) == {"num_replicas": 3}
    assert app._translator_replicas(config.routes[0]) == {"num_replicas": 2}


@pytest.mark.parametrize("args, message", [
    ({"ingress": {"autoscaling": {"max_replica": 3}}}, "unknown config key 'ingress.autoscaling.max_replica'"),
    ({"ingress": {"autoscaling": {"min_replicas": 3, "max_replicas": 2}}}, "max_replicas must be at least"),
    ({"ingress": {"autoscaling": {"min_replicas": 0}}}, r"ingress.autoscaling.min_replicas must be an integer >= 1"),
    ({"ingress": {"autoscaling": {"target_lag": 0}}}, "ingress.autoscaling.target_lag must be a positive integer"),
    ({"ingress": {"autoscaling": {"upscale_delay_s": -1}}}, "upscale_delay_s must be a number >= 0"),
    ({"ingress": {"autoscaling": {"look_back_period_s": 1, "metrics_interval_s": 2}}},
     "look_back_period_s must be greater than"),
    ({"ingress": {"num_replicas": 2, "autoscaling": {}}}, "either num_replicas or autoscaling"),
    ({"ingress": {"autoscaling": "yes"}}, "ingress.autoscaling must be a mapping"),
    ({"routes": [route(autoscaling={"target_ongoing_requests": 0})]},
     r"routes\[toy\].autoscaling.target_ongoing_requests must be a positive number"),
    ({"routes": [route(autoscaling={"min_replicas": 0, "max_replicas": 0})]}, "max_replicas must be at least 1"),
    ({"routes": [route(num_replicas=1, autoscaling={})]}, r"routes\[toy\]: set either"),
])
def test_invalid_autoscaling_names_the_key(args, message):
    with pytest.raises(StreamConfigError, match=message):
        stream_config_from_dict({"routes": [route()], **args})


def test_translators_may_scale_to_zero():
    config = stream_config_from_dict({"routes": [route(autoscaling={"min_replicas": 0})]})
    assert config.routes[0].autoscaling.min_replicas == 0


def test_serve_accepts_the_autoscaling_configs_app_builds():
    config = stream_config_from_dict({
        "routes": [route(autoscaling={"min_replicas": 1, "max_replicas": 3, "target_ongoing_requests": 4})],
        "ingress": {"autoscaling": {"min_replicas": 1, "max_replicas": 3, "target_lag": 200,
                                    "upscale_delay_s": 1, "downscale_delay_s": 7}}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # metrics_interval_s: still Serve's only knob
        ingress = AutoscalingConfig(**app._ingress_replicas(config)["autoscaling_config"])
        translator = AutoscalingConfig(**app._translator_replicas(config.routes[0])["autoscaling_config"])
    assert (ingress.min_replicas, ingress.max_replicas) == (1, 3)
    assert (ingress.upscale_delay_s, ingress.downscale_delay_s) == (1, 7)
    assert ingress.policy.policy_function == "s2s.stream.lag_policy:KafkaLagPolicy"
    assert ingress.policy.policy_kwargs == {"target_lag": 200}
    assert translator.policy.is_default_policy_function() and translator.target_ongoing_requests == 4
