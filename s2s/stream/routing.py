"""Which route serves a decoded message: its input topic, then its envelope's task.

Several routes may read one topic (say ``man`` with tasks ``summarization`` and ``translation``);
a message without a task goes to the first route listed for its topic.
"""
from __future__ import annotations

from collections.abc import Sequence

from ..tasks import canonical_task
from .config import RouteConfig
from .messages import Reason, Rejection


class Router:
    """Maps (input topic, task) to a RouteConfig."""

    def __init__(self, routes: Sequence[RouteConfig]):
        self._by_topic: dict[str, dict[str, RouteConfig]] = {}
        self._default: dict[str, RouteConfig] = {}
        for route in routes:
            self._by_topic.setdefault(route.input_topic, {})[canonical_task(route.task)] = route
            self._default.setdefault(route.input_topic, route)

    def topics(self) -> list[str]:
        return sorted(self._by_topic)

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
