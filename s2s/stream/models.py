"""What the translator deployment runs: a model behind a tiny protocol, its loaders, and the
batch decode that isolates a failing text instead of failing its neighbours.

A loader is ``loader(path, device) -> StreamModel``, named in config as "module:function" so a
Serve config file can pick one; tests and the benchmark inject ``load_identity_model``.
"""
from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)


class StreamModel(Protocol):
    """s2s.prediction.Translator satisfies this; so does IdentityModel."""

    name: str
    version: str

    def best(self, texts: Sequence[str], beam: int | None = None, max_len: int | None = None) -> list[str]:
        ...


Loader = Callable[[str, str], StreamModel]


@dataclass(frozen=True)
class DecodeItem:
    """One text to decode with its search settings (None: the model's defaults)."""

    text: str
    beam: int | None = None
    max_len: int | None = None


class DecodeList(list):
    """DecodeItems as the ingress sends them: a list that pickles as three columns (~1/10 of the
    time of the items one by one), since Ray pickles every call's list in the ingress process,
    whose GIL the poll loop needs. Unpickled, it is a plain list of DecodeItems again."""

    def __reduce__(self):
        return _items_from_columns, ([item.text for item in self], [item.beam for item in self],
                                     [item.max_len for item in self])


def _items_from_columns(texts: list[str], beams: list[int | None], max_lens: list[int | None]) -> list[DecodeItem]:
    return [DecodeItem(text, beam, max_len) for text, beam, max_len in zip(texts, beams, max_lens, strict=True)]


@dataclass(frozen=True)
class Decoded:
    """A decode outcome: ``text``, or ``error`` when the model failed on this input."""

    text: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class TranslateResult:
    """What one translator call returns for one list of DecodeItems (same order)."""

    model_name: str
    model_version: str
    outcomes: list[Decoded]

    def __reduce__(self):
        """Pickled as columns (texts, and errors by position): Ray pickles one of these per call
        back to the ingress, and a list of strings pickles ~20x faster than as many Decoded."""
        texts = [outcome.text for outcome in self.outcomes]
        errors = {i: outcome.error for i, outcome in enumerate(self.outcomes) if outcome.error is not None}
        return _result_from_columns, (self.model_name, self.model_version, texts, errors)


def _result_from_columns(model_name: str, model_version: str, texts: list[str | None],
                         errors: dict[int, str]) -> TranslateResult:
    outcomes = [Decoded(text=text) for text in texts]
    for i, error in errors.items():
        outcomes[i] = Decoded(text=texts[i], error=error)
    return TranslateResult(model_name, model_version, outcomes)


def load_checkpoint_model(path: str, device: str = "auto", quantize: str | None = None) -> StreamModel:
    """The default loader: an s2s checkpoint directory -> Translator (imported here, lazily,
    so that config parsing never loads torch). quantize="int8" decodes it in int8 on CPU; an
    int8 checkpoint (`s2s quantize`) is int8 without asking."""
    from s2s.prediction import Translator

    return Translator.from_checkpoint(path, device=device, quantize=quantize)


def load_route_model(loader: Loader, route) -> StreamModel:
    """A route's model through its loader; `quantize=` is passed only when the route sets it,
    so loaders that take (path, device) alone keep working."""
    if route.quantize is None:
        return loader(route.model, route.device)
    return loader(route.model, route.device, quantize=route.quantize)


class IdentityModel:
    """Returns every text unchanged: the pipeline's own cost, with no model in it."""

    def __init__(self, name: str = "identity", version: str = "0"):
        self.name, self.version = name, version

    def best(self, texts: Sequence[str], beam: int | None = None, max_len: int | None = None) -> list[str]:
        return list(texts)


def load_identity_model(path: str, device: str = "auto") -> StreamModel:
    """Loader for the identity model; ``path`` only names it (e.g. "identity")."""
    return IdentityModel(name=path or "identity")


def resolve_loader(loader: str | Loader) -> Loader:
    """A loader callable from "package.module:function" (or the callable itself)."""
    if callable(loader):
        return loader
    module_name, _, attr = loader.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"cannot import loader {loader!r}: {err}") from err
    if not callable(found):
        raise ValueError(f"loader {loader!r} is not callable")
    return found


def decode_items(model: StreamModel, items: Sequence[DecodeItem]) -> list[Decoded]:
    """Decode every item, batching items that share search settings.

    A group whose batch raises is split in halves until the texts that really fail stand
    alone: only they get an error (and go to the dead-letter topic); the rest are answered.
    """
    results: list[Decoded | None] = [None] * len(items)
    for (beam, max_len), indices in _group_by_settings(items).items():
        texts = [items[i].text for i in indices]
        for i, outcome in zip(indices, _decode_group(model, texts, beam, max_len), strict=True):
            results[i] = outcome
    return results  # type: ignore[return-value]  # every slot was filled by its group


def answer_lists(model: StreamModel, lists: Sequence[Sequence[DecodeItem]]) -> list[TranslateResult]:
    """Decode several callers' lists as one batch; one TranslateResult per list, in order."""
    outcomes = decode_items(model, [item for items in lists for item in items])
    results, start = [], 0
    for items in lists:
        results.append(TranslateResult(model.name, model.version, outcomes[start:start + len(items)]))
        start += len(items)
    return results


def _group_by_settings(items: Sequence[DecodeItem]) -> dict[tuple[int | None, int | None], list[int]]:
    groups: dict[tuple[int | None, int | None], list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault((item.beam, item.max_len), []).append(i)
    return groups


def _decode_group(model: StreamModel, texts: list[str], beam: int | None, max_len: int | None) -> list[Decoded]:
    """One batch; if it raises, each half again (bisection), down to the texts that fail alone.
    One bad text in n costs about 2*log2(n) smaller batches; decoding the n texts one by one
    took so long under load that the health check killed the replica as hung (max_decode_s)."""
    try:
        return [Decoded(text=out) for out in model.best(texts, beam=beam, max_len=max_len)]
    except Exception as batch_err:  # noqa: BLE001 - any model failure is isolated per text below
        if len(texts) == 1:
            return [Decoded(error=f"{type(batch_err).__name__}: {batch_err}")]
        log.warning("a batch of %d failed (%s); decoding each half apart", len(texts), batch_err)
    middle = len(texts) // 2
    return _decode_group(model, texts[:middle], beam, max_len) + _decode_group(model, texts[middle:], beam, max_len)
