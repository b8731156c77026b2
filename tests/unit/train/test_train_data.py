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


def system_error(message):
    """What Ray Data raises on the driver when the cluster broke a read: the error, `from
    SystemException()` (ray.data.exceptions.omit_traceback_stdout)."""
    from ray.data.exceptions import SystemException

    try:
        raise RuntimeError(message) from SystemException()
    except RuntimeError as err:
        return err


def failing_reads(monkeypatch, *errors):
    """Make the dataset read raise ``errors`` in turn, then return "dataset"; counts the reads."""
    from s2s.train import data

    reads = []

    def read(*args):
        reads.append(args)
        if len(reads) <= len(errors):
            raise errors[len(reads) - 1]
        return "dataset"

    monkeypatch.setattr(data, "_tokenized_dataset", read)
    return reads


def test_a_read_the_cluster_broke_is_started_again_within_its_budget(monkeypatch, vocab, caplog):
    from ray.exceptions import ActorDiedError

    from s2s.train.data import training_dataset

    reads = failing_reads(monkeypatch, system_error("The actor died because its node has died"), ActorDiedError())
    assert training_dataset("train.parquet", vocab, vocab, DataConfig(), workers=2, attempts=3) == "dataset"
    assert len(reads) == 3 and "attempt 3 of 3" in caplog.text and "node has died" in caplog.text


def test_a_read_the_cluster_keeps_breaking_fails_after_its_attempts(monkeypatch, vocab):
    from s2s.train.data import training_dataset

    reads = failing_reads(monkeypatch, *[system_error(f"lost {n}") for n in range(3)])
    with pytest.raises(RuntimeError, match="lost 2"):
        training_dataset("train.parquet", vocab, vocab, DataConfig(), workers=2, attempts=3)
    assert len(reads) == 3


@pytest.mark.parametrize("error", [CorpusError("data.train: 1 usable pairs cannot feed 2 workers"),
                                   ValueError("a bug in our tokenizer")])
def test_errors_of_the_data_or_our_code_are_not_retried(monkeypatch, vocab, error):
    from s2s.train.data import training_dataset

    reads = failing_reads(monkeypatch, error)
    with pytest.raises(type(error)):
        training_dataset("train.parquet", vocab, vocab, DataConfig(), workers=2)
    assert len(reads) == 1


def test_user_code_errors_are_not_mistaken_for_a_lost_node():
    from ray.data.exceptions import RayDataUserCodeException
    from ray.exceptions import NodeDiedError

    from s2s.train.data import lost_by_the_cluster

    try:
        raise RayDataUserCodeException("tokenize_batch failed") from NodeDiedError("n")
    except RayDataUserCodeException as err:
        assert not lost_by_the_cluster(err)
    assert lost_by_the_cluster(system_error("x")) and not lost_by_the_cluster(ValueError("x"))
