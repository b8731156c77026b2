"""The ingress autoscaling policy: replicas from the consumer group's lag."""
from types import SimpleNamespace

import pytest

from s2s.stream.lag_policy import LAG_METRIC, PARTITIONS_METRIC, KafkaLagPolicy, desired_replicas, next_replicas


@pytest.mark.parametrize("lag, partitions, expected", [
    (0, 3, 1),        # idle: the minimum
    (100, 3, 1),      # exactly one replica's worth
    (101, 3, 2),      # ceil
    (250, 3, 3),
    (10_000, 3, 3),   # never more consumers than partitions...
    (10_000, 8, 5),   # ...nor more than max_replicas
    (10_000, 0, 5),   # partition count unknown: max_replicas only
    (0, 1, 1),
])
def test_desired_replicas(lag, partitions, expected):
    assert desired_replicas(lag, 100, min_replicas=1, max_replicas=5, partitions=partitions) == expected


def test_min_replicas_wins_over_a_small_partition_count():
    assert desired_replicas(0, 100, min_replicas=2, max_replicas=5, partitions=1) == 2


def context(lags: dict, partitions: dict, target: int = 1):
    metrics = {LAG_METRIC: lags, PARTITIONS_METRIC: partitions} if lags else {}
    return SimpleNamespace(aggregated_metrics=metrics, target_num_replicas=target,
                           capacity_adjusted_min_replicas=1, capacity_adjusted_max_replicas=3)


def test_policy_sums_the_replicas_lag():
    policy = KafkaLagPolicy(target_lag=100)
    assert policy(context({"r1": 120.0, "r2": 30.0}, {"r1": 3, "r2": 3})) == (2, {})
    assert policy(context({"r1": 900.0}, {"r1": 3})) == (3, {})
    assert policy(context({"r1": 0.0, "r2": 0.0}, {"r1": 3, "r2": 3}, target=2)) == (1, {})
    assert policy(context({"r1": 0.0, "r2": 0.0, "r3": 0.0}, {"r1": 3}, target=3)) == (2, {})


@pytest.mark.parametrize("current, lag, expected", [
    (1, 450, 5),     # up: straight to what the lag asks for
    (3, 150, 3),     # a busy, caught-up burst: 2 replicas would sit at 75 each, over half of 100
    (3, 100, 2),     # down one step at a time...
    (2, 50, 1),      # ...while the replicas left stay at half their target
    (2, 60, 2),
    (3, 0, 2),
    (7, 0, 5),       # above max_replicas (max lowered): back within bounds
])
def test_next_replicas_steps_down_with_headroom(current, lag, expected):
    assert next_replicas(current, lag, 100, min_replicas=1, max_replicas=5, partitions=8) == expected


def test_policy_keeps_the_target_until_replicas_report():
    assert KafkaLagPolicy(target_lag=100)(context({}, {}, target=2)) == (2, {})
