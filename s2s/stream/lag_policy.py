"""Ray Serve autoscaling policy for the ingress: replicas follow the consumer group's lag.

Serve's own policy counts ongoing requests, and the ingress receives none: its replicas
consume Kafka. So each ingress replica reports, through Serve's ``record_autoscaling_stats``
hook, the records behind the log end on the partitions it owns (``LAG_METRIC``) and the
partition count of its input topics (``PARTITIONS_METRIC``). Serve averages each replica's
reports over ``look_back_period_s`` and calls this policy on every control-loop tick:

    desired = ceil(sum of the replicas' lag / target_lag)
              capped at the partition count (with the range assignor a consumer beyond the
              largest input topic's partition count is given nothing), then clamped to
              [min_replicas, max_replicas]

Up at once, down one replica at a time, and only while the replicas left would run at half
their lag target: every scale event rebalances the whole group (all members pause), and the
lag of a busy ingress that keeps up is its records in flight, which a proportional rule alone
reads as "too many replicas" in the middle of a burst (bench/step_load.py showed 3 -> 1 -> 3).

Serve wraps the policy (``_apply_autoscaling_config``) with the deployment's
upscale_delay_s / downscale_delay_s and bounds, so this module only computes the number.

Serve pickles this module by value into its controller: it imports nothing of s2s.
"""
from __future__ import annotations

import math
from typing import Any

LAG_METRIC = "s2s_lag"
PARTITIONS_METRIC = "s2s_partitions"
POLICY_PATH = "s2s.stream.lag_policy:KafkaLagPolicy"
DOWNSCALE_HEADROOM = 0.5  # scale down only while the replicas left would sit at half target_lag


def desired_replicas(total_lag: float, target_lag: int, min_replicas: int, max_replicas: int,
                     partitions: int) -> int:
    """ceil(lag / target) capped at ``partitions`` (0: unknown, no cap), within [min, max]."""
    wanted = math.ceil(total_lag / target_lag)
    if partitions > 0:
        wanted = min(wanted, partitions)
    return max(min_replicas, min(max_replicas, wanted))


def next_replicas(current: int, total_lag: float, target_lag: int, min_replicas: int,
                  max_replicas: int, partitions: int) -> int:
    """``desired_replicas`` going up; going down, one step, with headroom (see above)."""
    wanted = desired_replicas(total_lag, target_lag, min_replicas, max_replicas, partitions)
    if wanted >= current:
        return wanted
    if total_lag <= DOWNSCALE_HEADROOM * target_lag * (current - 1):
        return min(max(wanted, current - 1), max_replicas)
    return min(current, max_replicas)


class KafkaLagPolicy:
    """Serve instantiates this once per deployment with ``policy_kwargs`` and calls it with an
    AutoscalingContext; it returns (replicas, policy state)."""

    def __init__(self, target_lag: int):
        self.target_lag = target_lag

    def __call__(self, ctx: Any) -> tuple[int, dict[str, Any]]:
        metrics = ctx.aggregated_metrics or {}
        lags = metrics.get(LAG_METRIC) or {}
        if not lags:  # replicas still starting: no report yet, keep what there is
            return ctx.target_num_replicas, {}
        partitions = max((metrics.get(PARTITIONS_METRIC) or {}).values(), default=0)
        desired = next_replicas(ctx.target_num_replicas, sum(lags.values()), self.target_lag,
                                ctx.capacity_adjusted_min_replicas, ctx.capacity_adjusted_max_replicas,
                                int(partitions))
        return desired, {}
