"""The ingress's calls to its translators and quarantines, with fake Serve handles."""
import asyncio
import logging
import time
from types import SimpleNamespace

import pytest

from s2s.stream.config import stream_config_from_dict
from s2s.stream import deployments
from s2s.stream.deployments import KafkaIngress, log_through_serve
from s2s.stream.models import TranslateResult
from s2s.stream.names import quarantine_name, translator_name

DECODE_S = 0.05


class SlowHandle:
    """A handle whose every call takes DECODE_S; records how many ran at once."""

    def __init__(self):
        self.running = self.most_at_once = self.calls = 0
        self.translate = SimpleNamespace(remote=self._call)

    async def _call(self, items):
        self.running += 1
        self.calls += 1
        self.most_at_once = max(self.most_at_once, self.running)
        await asyncio.sleep(DECODE_S)
        self.running -= 1
        return TranslateResult("m", "1", [])


def ingress_with(call_timeout_s: float):
    config = stream_config_from_dict({"kafka": {"dead_letter_topic": "dlq"},
                                      "routes": [{"name": "up", "input_topic": "in", "output_topic": "out",
                                                  "model": "m"}]})
    route = config.routes[0]
    ingress = KafkaIngress.__new__(KafkaIngress)  # no Serve replica, no poll loop: only the calls
    ingress._config = SimpleNamespace(ingress=SimpleNamespace(call_timeout_s=call_timeout_s))
    ingress._translators = {translator_name(route): SlowHandle()}
    ingress._quarantines = {quarantine_name(route): SlowHandle()}
    ingress._quarantine_turns = {quarantine_name(route): asyncio.Semaphore(1)}
    return ingress, route


async def call_many(ingress, route, count: int, alone: bool) -> list:
    return await asyncio.gather(*(ingress._call_translator(route, [], alone) for _ in range(count)),
                                return_exceptions=True)


def test_suspects_go_to_the_quarantine_one_at_a_time_and_none_times_out_waiting_its_turn():
    # Ten calls take 10 x DECODE_S in all, over the timeout; each alone takes well under it.
    ingress, route = ingress_with(call_timeout_s=4 * DECODE_S)
    started = time.monotonic()
    results = asyncio.run(call_many(ingress, route, 10, alone=True))
    quarantine = ingress._quarantines[quarantine_name(route)]
    assert all(isinstance(r, TranslateResult) for r in results), results
    assert quarantine.calls == 10 and quarantine.most_at_once == 1
    assert time.monotonic() - started >= 10 * DECODE_S


def test_translator_calls_are_not_serialized():
    ingress, route = ingress_with(call_timeout_s=4 * DECODE_S)
    results = asyncio.run(call_many(ingress, route, 10, alone=False))
    assert all(isinstance(r, TranslateResult) for r in results), results
    assert ingress._translators[translator_name(route)].most_at_once == 10


@pytest.fixture
def loggers():
    """The s2s and ray.serve loggers as they were, restored after the test."""
    names = ("s2s", "ray.serve")
    saved = {name: (list(logging.getLogger(name).handlers), logging.getLogger(name).level,
                    logging.getLogger(name).propagate) for name in names}
    for name in names:
        logging.getLogger(name).handlers.clear()
    yield {name: logging.getLogger(name) for name in names}
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


def test_in_a_replica_s2s_info_lines_go_through_serves_handlers_once(loggers, monkeypatch):
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    loggers["ray.serve"].addHandler(handler)  # what Serve sets up in a replica before our __init__
    monkeypatch.setattr(deployments.serve, "get_replica_context", lambda: SimpleNamespace())
    log_through_serve()
    log_through_serve()  # the ingress and a translator in one process: still one handler each
    logging.getLogger("s2s.stream.poll_loop").info("assigned %s", ["in-0"])
    assert lines == ["assigned ['in-0']"]


def test_outside_a_replica_the_s2s_logger_is_left_alone(loggers):
    loggers["ray.serve"].addHandler(logging.StreamHandler())  # a driver's, after serve.run
    log_through_serve()
    assert loggers["s2s"].handlers == [] and loggers["s2s"].propagate
