from types import SimpleNamespace

from kafka.structs import TopicPartition

from s2s.stream.messages import Reason, Rejection
from s2s.stream.suspects import Suspects


def record(offset, partition=0):
    return SimpleNamespace(topic="in", partition=partition, offset=offset)


def screened(suspects, records):
    plans = [object() for _ in records]
    alone = suspects.screen(records, plans)
    return alone, [p if isinstance(p, Rejection) else None for p in plans]


def test_timeouts_of_batch_calls_isolate_a_record_only_once_the_budget_is_spent():
    suspects = Suspects(max_decode_failures=3, max_call_timeouts=3)
    r = record(0)
    for _ in range(2):
        suspects.timed_out(r, alone=False)
    assert not suspects and screened(suspects, [r]) == (set(), [None])
    suspects.timed_out(r, alone=False)
    assert screened(suspects, [r]) == ({0}, [None])


def test_timed_out_calls_of_its_own_end_in_a_decode_timeout_dead_letter():
    suspects = Suspects(max_decode_failures=2, max_call_timeouts=1)
    r = record(0)
    suspects.timed_out(r, alone=False)
    suspects.timed_out(r, alone=True)
    assert screened(suspects, [r]) == ({0}, [None])
    suspects.timed_out(r, alone=True)
    _, (rejection,) = screened(suspects, [r])
    assert rejection.reason is Reason.DECODE_TIMEOUT and "2 outlived ingress.call_timeout_s" in rejection.detail


def test_an_answer_or_a_partition_given_up_forgets_the_timeouts():
    suspects = Suspects(max_decode_failures=3, max_call_timeouts=2)
    answered, moved, kept = record(0), record(0, partition=1), record(1)
    for r in (answered, moved, kept):
        suspects.timed_out(r, alone=False)
    suspects.clear([answered])
    suspects.forget({TopicPartition("in", 1)})
    for r in (answered, moved, kept):
        suspects.timed_out(r, alone=False)
    assert suspects.ids() == {("in", 0, 1)}  # only `kept` reached two timeouts


def test_a_dead_letter_after_a_crash_and_a_timeout_names_both():
    suspects = Suspects(max_decode_failures=2, max_call_timeouts=3)
    r = record(0)
    suspects.decode_failed(r, Reason.MODEL_CRASH)
    suspects.timed_out(r, alone=True)
    _, (rejection,) = screened(suspects, [r])
    assert rejection.detail == ("of 2 calls holding it, 1 outlived ingress.call_timeout_s and the translator "
                                "process died in 1")
