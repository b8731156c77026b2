"""The chaos driver's load and its verdict.

Load: ``count`` messages over KEYS keys (spread over the input topic's partitions by Kafka's
key hash), each a JSON envelope whose id is "<key>#<seq>", seq counting up per key in produce
order; one message in POISON_EVERY is replaced by a poison record of the next bad-input class,
under a key of its own.

Verdict: which good ids were never answered (lost), answered more than once (duplicates) or
answered wrongly, whether each key's first answers came in produce order, and whether every
poison record reached the dead-letter topic with its reason and original bytes.
"""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from s2s.stream import headers as hdr
from tests.integration.stream.streams import BAD_INPUTS, header, toy_texts

from .loaders import SLOW

KEYS = 300
POISON_EVERY = 100
# Fits the run's 300-byte cap; a JSON escape decoding to a lone surrogate, which no UTF-8 output
# can hold (found by tests/unit/stream/test_messages_fuzz.py).
SURROGATE_ID = (b'{"text": "a b", "id": "\\ud800"}', "bad_field")
POISON_CLASSES = [*BAD_INPUTS.values(), SURROGATE_ID]


@dataclass(frozen=True)
class Workload:
    items: list[tuple[bytes, bytes]]         # (key, value) in produce order
    expected: dict[str, str]                 # good message id -> its answer text
    poison: dict[bytes, tuple[bytes, str]]   # poison key -> (value, reason)
    slow: frozenset[str]                     # ids of the texts the model stalls on


def build_workload(count: int, translate: Callable[[list[str]], list[str]], slow_at: Sequence[float] = (),
                   seed: int = 0) -> Workload:
    """``slow_at``: fractions of the stream where a good text gets the model's stall token."""
    texts = toy_texts(count, seed)
    for fraction in slow_at:
        at = int(fraction * count)
        texts[at + _is_poison(at)] += f" {SLOW}"  # a poison slot's text is never sent
    items, good, poison = [], {}, {}
    for i, text in enumerate(texts):
        if _is_poison(i):
            value, reason = POISON_CLASSES[len(poison) % len(POISON_CLASSES)]
            key = f"poison-{len(poison)}-{reason}".encode()
            poison[key] = (value, reason)
            items.append((key, value))
            continue
        key = f"k{i % KEYS:03d}"
        ident = f"{key}#{i // KEYS}"
        good[ident] = text
        items.append((key.encode(), json.dumps({"id": ident, "text": text}).encode()))
    answers = translate(list(good.values()))
    slow = frozenset(ident for ident, text in good.items() if SLOW in text.split())
    return Workload(items, dict(zip(good, answers)), poison, slow)


def _is_poison(i: int) -> bool:
    return i % POISON_EVERY == POISON_EVERY // 2


def answered_ids(records) -> set[str]:
    return {_reply(record)[0] for record in records}


def _reply(record) -> tuple[str, str]:
    reply = json.loads(record.value)
    return reply["id"], reply["text"]


def _seq(ident: str) -> int:
    return int(ident.rsplit("#", 1)[1])


@dataclass(frozen=True)
class Verdict:
    lost: int                 # good ids with no answer
    duplicates: int           # answers beyond the first for an id
    wrong: int                # answers whose text is not the model's, or for no input at all
    ordering_violations: int  # a key's first answers out of produce order (counted per pair)
    dead_letters: int         # records read from the dead-letter topic
    dlq_missing: int          # poison records never dead-lettered
    dlq_duplicates: int       # dead letters beyond the first for a poison record
    dlq_wrong: int            # dead letters with the wrong reason, bytes or key
    stalled_ms: int           # least input-to-answer latency of the stalled texts (0: none)
    lost_ids: tuple[str, ...]  # a few of the lost ids, to look for

    @property
    def clean(self) -> bool:
        return not (self.lost or self.wrong or self.ordering_violations or self.dlq_missing or self.dlq_wrong)


def judge(workload: Workload, answers: Sequence, dead: Sequence) -> Verdict:
    """``answers``: output records in each partition's offset order (a key stays in one)."""
    counts: Counter[str] = Counter()
    firsts: dict[bytes, list[int]] = defaultdict(list)
    stalled: list[int] = []
    wrong = 0
    for record in answers:
        ident, text = _reply(record)
        wrong += workload.expected.get(ident) != text
        if counts[ident] == 0:
            firsts[record.key].append(_seq(ident))
            if ident in workload.slow:
                stalled.append(int(header(record, hdr.LATENCY_MS)))
        counts[ident] += 1
    dead_counts = Counter(record.key for record in dead)
    lost = sorted(set(workload.expected) - set(counts))
    return Verdict(
        lost=len(lost),
        duplicates=sum(n - 1 for n in counts.values()),
        wrong=wrong,
        ordering_violations=sum(later < earlier for seqs in firsts.values() for earlier, later in zip(seqs, seqs[1:])),
        dead_letters=len(dead),
        dlq_missing=len(set(workload.poison) - set(dead_counts)),
        dlq_duplicates=sum(n - 1 for n in dead_counts.values()),
        dlq_wrong=sum(not _is_dead_letter_of(record, workload.poison) for record in dead),
        stalled_ms=min(stalled, default=0),
        lost_ids=tuple(lost[:5]),
    )


def _is_dead_letter_of(record, poison: dict[bytes, tuple[bytes, str]]) -> bool:
    value, reason = poison.get(record.key, (None, None))
    return record.value == value and header(record, hdr.ERROR_REASON) == reason
