"""The chaos verdict itself, on made-up records: a judge that miscounted would hide a loss.

    .venv/bin/pytest tests/chaos/test_workload.py -v
"""
import json

from s2s.stream import headers as hdr
from tests.unit.stream.fakes import Record

from .loaders import SLOW
from .workload import KEYS, POISON_EVERY, build_workload, judge


def reverse(texts):
    return [text[::-1] for text in texts]


def answer(ident: str, text: str, latency_ms: int = 5) -> Record:
    value = json.dumps({"id": ident, "text": text, "task": "translation"}).encode()
    return Record("out", 0, 0, value, key=ident.split("#")[0].encode(), headers=[(hdr.LATENCY_MS, str(latency_ms).encode())])


def dead_letter(key: bytes, value: bytes, reason: str) -> Record:
    return Record("dlq", 0, 0, value, key=key, headers=[(hdr.ERROR_REASON, reason.encode())])


def test_the_load_is_sequenced_per_key_with_one_percent_poison_and_the_stalls_asked_for():
    workload = build_workload(2 * KEYS, reverse, slow_at=(0.25,))
    assert len(workload.items) == 2 * KEYS and len(workload.poison) == 2 * KEYS // POISON_EVERY
    assert len(workload.expected) == len(workload.items) - len(workload.poison)
    assert [key for key, _ in workload.items[:2]] == [b"k000", b"k001"] and workload.items[KEYS][0] == b"k000"
    assert {"k000#0", "k000#1"} <= set(workload.expected)
    assert workload.expected["k000#0"] == json.loads(workload.items[0][1])["text"][::-1]
    # 0.25 of 600 is message 150, a poison slot: the stall goes to the next message.
    assert workload.slow == {"k151#0"} and json.loads(workload.items[151][1])["text"].endswith(f" {SLOW}")


def test_a_clean_run_judges_clean():
    workload = build_workload(3 * KEYS, reverse, slow_at=(0.1,))
    answers = [answer(ident, text, latency_ms=9_000 if ident in workload.slow else 5)
               for ident, text in workload.expected.items()]
    dead = [dead_letter(key, value, reason) for key, (value, reason) in workload.poison.items()]
    verdict = judge(workload, answers, dead)
    assert verdict.clean and verdict.duplicates == 0 and verdict.dlq_duplicates == 0
    assert verdict.dead_letters == len(workload.poison) and verdict.stalled_ms == 9_000


def test_losses_duplicates_wrong_answers_and_reordering_are_counted():
    workload = build_workload(3 * KEYS, reverse)
    idents = list(workload.expected)
    answers = [answer(ident, workload.expected[ident]) for ident in idents[1:]]  # the first one lost
    answers.append(answer(idents[5], workload.expected[idents[5]]))               # a duplicate
    answers.append(answer("k001#2", workload.expected["k001#2"]))
    answers.append(answer("k001#1", workload.expected["k001#1"]))                 # a redelivery: in order
    answers[0] = answer(idents[1], "not the answer")
    late, early = [answer(f"k002#{seq}", workload.expected[f"k002#{seq}"]) for seq in (2, 1)]
    answers = [a for a in answers if a.key != b"k002"] + [late, early, answer("k002#0", workload.expected["k002#0"])]
    poison = list(workload.poison.items())
    dead = [dead_letter(key, value, reason) for key, (value, reason) in poison[1:]]
    dead += [dead_letter(poison[1][0], poison[1][1][0], poison[1][1][1]), dead_letter(poison[2][0], b"?", "bad_json")]
    verdict = judge(workload, answers, dead)
    assert (verdict.lost, verdict.duplicates, verdict.wrong) == (1, 3, 1) and verdict.lost_ids == (idents[0],)
    assert verdict.ordering_violations == 2  # k002: 2 before 1, then 1 before 0
    assert (verdict.dlq_missing, verdict.dlq_duplicates, verdict.dlq_wrong) == (1, 2, 1)
    assert not verdict.clean
