"""Ray Train side of issue 16: texts kept for subword sampling, the average's upload."""
import numpy as np
import pyarrow as pa

from s2s.config import TokenizerConfig
from s2s.subword import Resegmenter
from s2s.train.data import RunStorage, read_shard, tokenize_batch
from s2s.train.sharding import Shard
from s2s.vocabulary import learn_vocabulary

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "running", "jumped",
         "quickly", "foxes", "dogs", "brownish", "overlay", "number"]
TEXTS = [" ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(8)) for i in range(300)]


def test_tokenize_batch_keeps_texts_only_when_asked():
    vocab = learn_vocabulary(TEXTS, TokenizerConfig(type="word", vocab_size=20))
    table = pa.table({"src": [" a b "], "tgt": ["b a"], "id": pa.array([7], pa.uint64())})
    plain = tokenize_batch(table, vocab.model_proto, None, max_src=8, max_tgt=8)
    kept = tokenize_batch(table, vocab.model_proto, None, max_src=8, max_tgt=8, keep_text=True)
    assert "src" not in plain.column_names
    assert kept.column("src").to_pylist() == ["a b"] and kept.column("tgt").to_pylist() == ["b a"]


def test_shard_with_texts_resegments_by_example_id():
    vocab = learn_vocabulary(TEXTS, TokenizerConfig(type="unigram", vocab_size=60))
    batches = [pa.table({"id": pa.array([i], pa.uint64()), "src_ids": [[4]], "tgt_ids": [[5]],
                         "src": [TEXTS[i]], "tgt": [TEXTS[i + 1]]}) for i in range(3)]

    class Iterator:
        def iter_batches(self, **kwargs):
            return iter(batches)

    shard = read_shard(Iterator())
    assert shard.src_texts == TEXTS[:3] and shard.tgt_texts == TEXTS[1:4]
    sampler = Resegmenter(vocab, vocab, 0.1, 64, 64, seed=1)
    ids = shard.example_ids([0, 2])
    draws = {tuple(sampler.collate(shard.src_texts, shard.tgt_texts, [0, 2], epoch, ids)
                   .src[0].tolist()) for epoch in range(8)}
    assert len(draws) >= 3
    # The same examples at the same epoch draw the same, whatever their shard position.
    moved = Shard(np.array([9, 2], dtype=np.uint64), [[4], [4]], [[5], [5]],
                  [TEXTS[1], TEXTS[2]], [TEXTS[2], TEXTS[3]])
    again = sampler.collate(moved.src_texts, moved.tgt_texts, [1], 3, moved.example_ids([1]))
    there = sampler.collate(shard.src_texts, shard.tgt_texts, [2], 3, shard.example_ids([2]))
    assert again.src.tolist() == there.src.tolist()


def test_put_directory_replaces_the_run_subdirectory(tmp_path):
    local = tmp_path / "local"
    local.mkdir()
    (local / "model.safetensors").write_bytes(b"new")
    storage = RunStorage(str(tmp_path / "store"), "run")
    (tmp_path / "store" / "run" / "averaged").mkdir(parents=True)
    (tmp_path / "store" / "run" / "averaged" / "stale").write_text("old")
    where = storage.put_directory(local, "averaged")
    assert sorted(p.name for p in (tmp_path / "store" / "run" / "averaged").iterdir()) == [
        "model.safetensors"]
    assert where.endswith("run/averaged")
