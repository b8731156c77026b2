"""Per-worker batching: exactly-once epochs, equal step counts, resumable data position."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s2s.train.sharding import Shard, array_to_ids, ids_to_array, split_to_count


def make_shard(n: int, seed: int = 0, first_id: int = 2**63) -> Shard:
    rng = np.random.default_rng(seed)
    src = [list(rng.integers(4, 20, rng.integers(1, 12))) for _ in range(n)]
    tgt = [list(reversed(s)) for s in src]
    ids = np.arange(first_id, first_id + n, dtype=np.uint64)   # uint64 like Ray's row_hash
    return Shard(ids, src, tgt)


def flatten(batches):
    return [p for b in batches for p in b]


def test_an_epoch_covers_the_shard_once_within_the_token_budget():
    shard = make_shard(300)
    batches = shard.batches(shard.remaining(set()), batch_tokens=120, seed=1, epoch=0)
    assert sorted(flatten(batches)) == list(range(300))
    for b in batches:
        longest = max(max(len(shard.src[p]), len(shard.tgt[p])) + 1 for p in b)
        assert len(b) == 1 or longest * len(b) <= 120


def test_order_depends_on_seed_and_epoch_only():
    shard = make_shard(200)
    all_pos = shard.remaining(set())
    assert shard.batches(all_pos, 100, 3, 1) == shard.batches(all_pos, 100, 3, 1)
    assert shard.batches(all_pos, 100, 3, 1) != shard.batches(all_pos, 100, 3, 2)


def test_resume_skips_exactly_the_examples_already_seen():
    shard = make_shard(100)
    seen = set(shard.example_ids(range(0, 100, 3)))
    left = shard.remaining(seen)
    batches = shard.batches(left, 80, 0, 0)
    trained = set(shard.example_ids(flatten(batches)))
    assert trained.isdisjoint(seen) and trained | seen == set(shard.ids.tolist())


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(1, 9), min_size=1, max_size=12), extra=st.integers(0, 20))
def test_splitting_reaches_the_count_and_keeps_every_example(sizes, extra):
    batches, start = [], 0
    for size in sizes:
        batches.append(list(range(start, start + size)))
        start += size
    count = min(len(batches) + extra, start)
    out = split_to_count(batches, count)
    assert len(out) == count and all(out) and flatten(out) == flatten(batches)


def test_splitting_fails_clearly_when_a_worker_has_too_few_examples():
    with pytest.raises(ValueError, match="has 3 examples left but must take 5 steps"):
        split_to_count([[0, 1], [2]], 5)


def test_example_ids_round_trip_through_int64_checkpoints():
    ids = {0, 1, 2**63, 2**64 - 1}
    packed = ids_to_array(sorted(ids))
    assert packed.dtype == np.int64 and array_to_ids(packed) == ids
