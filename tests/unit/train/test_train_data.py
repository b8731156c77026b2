"""Driver-side data helpers: cleaning, tokenization, data-path errors, stored vocabulary."""
import pyarrow as pa
import pytest

from s2s.config import DataConfig, ExperimentConfig, TokenizerConfig, from_dict
from s2s.corpus import CorpusError
from s2s.train.data import (RunStorage, check_data_paths, clean_pairs, read_shard, tokenize_batch,
                            with_data_root)
from s2s.vocabulary import learn_vocabulary


@pytest.fixture(scope="module")
def vocab():
    return learn_vocabulary(["a b c d", "d c b a"] * 20, TokenizerConfig(type="word", vocab_size=12))


def test_clean_pairs_strips_and_drops_empty_sides():
    table = pa.table({"src": [" a b ", "", "c", None], "tgt": ["b a", "x", "  ", "y"],
                      "id": pa.array([1, 2, 3, 4], pa.uint64())})
    assert clean_pairs(table).to_pylist() == [{"src": "a b", "tgt": "b a", "id": 1}]


def test_tokenize_batch_truncates_like_the_core_and_keeps_ids(vocab):
    table = pa.table({"src": ["a b c d", "a"], "tgt": ["d c b a", " "],
                      "id": pa.array([7, 2**64 - 1], pa.uint64())})
    out = tokenize_batch(table, vocab.model_proto, None, max_src=3, max_tgt=16)
    assert out.column("id").to_pylist() == [7]
    assert out.column("src_ids").to_pylist() == [vocab.encode(["a b"])[0]]   # max_src - 1 tokens
    assert out.column("tgt_ids").to_pylist() == vocab.encode(["d c b a"])


def test_read_shard_collects_every_batch(vocab):
    batches = [pa.table({"id": pa.array([i], pa.uint64()), "src_ids": [[4, 5]], "tgt_ids": [[5, 4]]})
               for i in range(3)]

    class Iterator:
        def iter_batches(self, **kwargs):
            return iter(batches)

    shard = read_shard(Iterator())
    assert shard.ids.tolist() == [0, 1, 2] and shard.src == [[4, 5]] * 3


def test_missing_data_path_is_named(tmp_path):
    with pytest.raises(CorpusError, match=r"data.train: .*nope.parquet: no such file"):
        check_data_paths(DataConfig(train=str(tmp_path / "nope.parquet")))
    (tmp_path / "t.parquet").write_bytes(b"")
    with pytest.raises(CorpusError, match="data.dev"):
        check_data_paths(DataConfig(train=str(tmp_path / "t.parquet"), dev=str(tmp_path / "d.tsv")))


def test_run_storage_keeps_the_vocabulary_for_a_rerun(tmp_path, vocab):
    storage = RunStorage(str(tmp_path), "run-1")
    assert storage.load_vocabularies() is None
    storage.save_vocabularies(vocab, vocab)
    src, tgt = RunStorage(str(tmp_path), "run-1").load_vocabularies()
    assert src is tgt and src.model_proto == vocab.model_proto
    assert RunStorage(str(tmp_path), "run-2").load_vocabularies() is None


def test_run_storage_accepts_a_pyarrow_uri(tmp_path, vocab):
    storage = RunStorage(f"file://{tmp_path}", "r")
    storage.save_vocabularies(vocab, vocab)
    assert (tmp_path / "r" / "s2s_vocab" / "vocab.spm").read_bytes() == vocab.model_proto


def test_data_root_moves_only_relative_paths():
    cfg = from_dict(ExperimentConfig, {"data": {"train": "data/t.parquet", "dev": "/abs/d.parquet",
                                                "test": "s3://b/t.parquet"}}).validate()
    moved = with_data_root(cfg, "/repo").data
    assert (moved.train, moved.dev, moved.test) == ("/repo/data/t.parquet", "/abs/d.parquet",
                                                    "s3://b/t.parquet")
    assert with_data_root(cfg, "gs://bucket/x/").data.train == "gs://bucket/x/data/t.parquet"
    assert with_data_root(cfg, None) is cfg
