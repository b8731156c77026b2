"""The chaos run's model (imported by name inside the translator replicas): the real toy model,
failing on "boom" like tests/integration/stream/loaders.py's, and stalling on "slow".

A call holding a "slow" text that this replica has not decoded before sleeps SLOW_DECODE_S:
longer than the run's max.poll.interval.ms and its ingress call timeout, so the ingress gives
up on the call and retries it from Kafka while its consumer keeps polling. Remembering the
texts bounds the retries (each replica stalls once per slow text), as a cold cache would.
"""
import time

from s2s.stream.models import load_checkpoint_model
from tests.integration.stream.loaders import FailsOnTrigger

SLOW = "slow"
SLOW_DECODE_S = 10.0


class StallsOnFirstSight:
    def __init__(self, model, delay_s: float):
        self._model, self._delay_s = model, delay_s
        self._seen: set[str] = set()
        self.name, self.version = model.name, model.version

    def best(self, texts, beam=None, max_len=None):
        fresh = {text for text in texts if SLOW in text.split()} - self._seen
        if fresh:
            self._seen |= fresh
            time.sleep(self._delay_s)  # the simulated stall itself
        return self._model.best(texts, beam=beam, max_len=max_len)


def load_chaos_toy(path: str, device: str = "cpu"):
    return StallsOnFirstSight(FailsOnTrigger(load_checkpoint_model(path, device)), SLOW_DECODE_S)
