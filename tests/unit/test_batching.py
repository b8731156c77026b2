import torch

from s2s.batching import collate, token_batches, truncate
from s2s.vocabulary import BOS_ID, EOS_ID, PAD_ID


def test_token_budget_and_coverage():
    src_lens = [3, 9, 4, 12, 5, 5, 7, 2, 11, 6] * 10
    tgt_lens = [4, 8, 4, 10, 6, 5, 7, 3, 12, 6] * 10
    batches = token_batches(src_lens, tgt_lens, batch_tokens=40, seed=1, epoch=0)
    seen = sorted(i for b in batches for i in b)
    assert seen == list(range(100))
    for b in batches:
        longest = max(max(src_lens[i], tgt_lens[i]) + 1 for i in b)
        assert longest * len(b) <= 40 or len(b) == 1


def test_order_depends_on_seed_and_epoch_only():
    lens = list(range(1, 60))
    a = token_batches(lens, lens, 50, seed=3, epoch=1)
    assert a == token_batches(lens, lens, 50, seed=3, epoch=1)
    assert a != token_batches(lens, lens, 50, seed=3, epoch=2)


def test_collate_adds_bos_eos_and_padding():
    src = [[5, 6, 7], [8]]
    tgt = [[9], [10, 11]]
    batch = collate(src, tgt, [0, 1])
    assert batch.src.tolist() == [[5, 6, 7, EOS_ID], [8, EOS_ID, PAD_ID, PAD_ID]]
    assert batch.src_len.tolist() == [4, 2]
    assert batch.tgt_in.tolist() == [[BOS_ID, 9, PAD_ID], [BOS_ID, 10, 11]]
    assert batch.tgt_out.tolist() == [[9, EOS_ID, PAD_ID], [10, 11, EOS_ID]]
    assert batch.ntokens == 5
    assert batch.to("cpu").src.dtype == torch.long


def test_truncate_leaves_room_for_eos():
    assert truncate([[1, 2, 3, 4, 5]], 4) == [[1, 2, 3]]
