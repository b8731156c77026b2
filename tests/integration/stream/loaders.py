"""Model loaders for the streaming tests (imported by name inside the translator replicas)."""
import os
import time

from s2s.stream.models import IdentityModel, load_checkpoint_model

TRIGGER = "boom"


class FailsOnTrigger:
    """The real toy model, except that any batch holding a text with the token "boom" raises,
    the way a model bug or a CUDA error would."""

    def __init__(self, model):
        self._model = model
        self.name, self.version = model.name, model.version

    def best(self, texts, beam=None, max_len=None):
        if any(TRIGGER in text.split() for text in texts):
            self.on_trigger()
        return self._model.best(texts, beam=beam, max_len=max_len)

    def on_trigger(self) -> None:
        raise ValueError("the model cannot decode 'boom'")


def load_failing_toy(path: str, device: str = "cpu"):
    return FailsOnTrigger(load_checkpoint_model(path, device))


class DiesOnTrigger(FailsOnTrigger):
    """The real toy model, except that a batch holding "boom" kills the replica's process, the
    way a segfault in native code or the kernel's OOM killer would: nothing can be caught."""

    def on_trigger(self) -> None:
        os._exit(1)


def load_dying_toy(path: str, device: str = "cpu"):
    return DiesOnTrigger(load_checkpoint_model(path, device))


class Slow:
    """The real toy model with every call lengthened to ``delay_s``, as a big model would be: a
    replica killed at any moment of the stream then certainly has calls in flight."""

    def __init__(self, model, delay_s: float):
        self._model, self._delay_s = model, delay_s
        self.name, self.version = model.name, model.version

    def best(self, texts, beam=None, max_len=None):
        started = time.monotonic()
        answers = self._model.best(texts, beam=beam, max_len=max_len)
        time.sleep(max(0.0, self._delay_s - (time.monotonic() - started)))  # simulated decode cost
        return answers


def load_slow_toy(path: str, device: str = "cpu"):
    return Slow(load_checkpoint_model(path, device), delay_s=0.25)


def load_slow_identity(path: str, device: str = "cpu"):
    """Texts back unchanged, 0.5 s per decode batch: slow enough that a burst builds up lag."""
    return Slow(IdentityModel(name=path or "identity"), delay_s=0.5)


class HangsOnTrigger(FailsOnTrigger):
    """The real toy model, except that a batch holding "boom" never returns, the way a
    deadlocked native kernel would: only the translator's health check can end it."""

    def on_trigger(self) -> None:
        time.sleep(3600)


def load_hanging_toy(path: str, device: str = "cpu"):
    return HangsOnTrigger(load_checkpoint_model(path, device))
