"""Which route serves a decoded message: its input topic, then its envelope's task.

Several routes may read one topic (say ``man`` with tasks ``summarization`` and ``translation``);
a message without a task goes to the first route listed for its topic. A route with a canary
serves the canary's share of the keys with the canary's model (``serving``).
"""
from __future__ import annotations

import zlib
from collections.abc import Sequence

from ..tasks import canonical_task
from .config import RouteConfig
from .messages import Reason, Rejection


class Router:
    """Maps (input topic, task) to a RouteConfig."""

    def __init__(self, routes: Sequence[RouteConfig]):
        self._by_topic: dict[str, dict[str, RouteConfig]] = {}
        self._default: dict[str, RouteConfig] = {}
        self._canaries = {route.name: route.canary_route() for route in routes if route.canary}
        for route in routes:
            self._by_topic.setdefault(route.input_topic, {})[route.task] = route  # canonical (config.Task)
            self._default.setdefault(route.input_topic, route)

    def topics(self) -> list[str]:
        return sorted(self._by_topic)

    def serving(self, route: RouteConfig, key: bytes | None, offset: int) -> RouteConfig:
        """``route``, or its canary_route() for the canary's share of the keys."""
        canary = self._canaries.get(route.name)
        if canary is not None and in_canary(key, offset, route.canary.percent):
            return canary
        return route

    def route(self, topic: str, task: str | None) -> RouteConfig | Rejection:
        """The route for a message on ``topic`` asking for ``task`` (None: the topic's default)."""
        if topic not in self._by_topic:
            return Rejection(Reason.UNKNOWN_TASK, f"no route reads topic {topic!r}")
        if task is None:
            return self._default[topic]
        route = self._by_topic[topic].get(canonical_task(task))
        if route is None:
            known = ", ".join(sorted(self._by_topic[topic]))
            return Rejection(Reason.UNKNOWN_TASK, f"task {task!r} is not served on topic {topic!r} (served: {known})")
        return route


CANARY_BUCKETS = 10_000   # percent has two decimals' resolution


def in_canary(key: bytes | None, offset: int, percent: float) -> bool:
    """Stable per key: a key always falls on the same side (CRC-32 of its bytes); a keyless
    record by its offset."""
    bucket = (zlib.crc32(key) if key is not None else offset) % CANARY_BUCKETS
    return bucket < percent * CANARY_BUCKETS / 100
