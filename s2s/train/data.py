"""The Ray path's data. Driver side: the training split as a tokenized Ray Dataset, the dev
pairs, and the run's vocabulary kept next to its checkpoints. Worker side: the rank's
shard pulled into memory (`read_shard`) and `ShardFeed`, the training loop's feed on a rank.

    Parquet --read_parquet(row_hash)--> clean + tokenize (map_batches)
            --repartition into many small blocks--> materialize --> streaming_split per worker

Each row keeps a stable id (Ray's deterministic `row_hash` of file path and position) so
workers can record which examples an epoch has already covered.
"""
from __future__ import annotations

import functools
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ..batching import Batch, truncate
from ..config import DataConfig, ExperimentConfig
from ..corpus import CorpusError, read_corpus
from ..subword import Resegmenter
from ..training import Progress
from ..vocabulary import Vocabulary, learn_vocabularies
from .job import epoch_seen_after
from .sharding import Shard, split_to_count

log = logging.getLogger(__name__)

# Blocks per worker: streaming_split hands out whole blocks, so a few per worker keep
# the shards within a block of each other in size.
BLOCKS_PER_WORKER = 8
# Reads of the training split before the run gives up when the cluster loses a node or an
# actor under them (an autoscaler scaling an idle node down as Ray Data places a reader there).
DATASET_ATTEMPTS = 3


def is_uri(path: str) -> bool:
    return "://" in path


def resolve_path(path: str) -> str:
    """Absolute local path (workers run in other directories) or the URI unchanged."""
    return path if is_uri(path) else str(Path(path).expanduser().resolve())


def with_data_root(cfg: ExperimentConfig, root: str | None) -> ExperimentConfig:
    """Read the config's relative data paths from `root` instead of the working directory.

    A Ray job runs in an uploaded copy of the working dir without git-ignored files
    (data/), so `--data-root` points back at where the data really is.
    """
    if not root:
        return cfg

    def rooted(path: str) -> str:
        if not path or is_uri(path) or Path(path).is_absolute():
            return path
        return f"{root.rstrip('/')}/{path}" if is_uri(root) else str(Path(root) / path)

    data = cfg.data.replace(train=rooted(cfg.data.train), dev=rooted(cfg.data.dev), test=rooted(cfg.data.test))
    return cfg.replace(data=data)


def check_data_paths(data: DataConfig) -> None:
    """Fail before any Ray work when a configured corpus file does not exist."""
    for key in ("train", "dev"):
        path = getattr(data, key)
        if path and not _exists(path):
            raise CorpusError(f"data.{key}: {path}: no such file (relative paths are read from "
                              f"{Path.cwd()}; a Ray job's working dir leaves out git-ignored "
                              f"data: pass --data-root, or use absolute paths or URIs)")


def _exists(path: str) -> bool:
    if not is_uri(path):
        return Path(path).is_file()
    fs, inner = pafs.FileSystem.from_uri(path)
    return fs.get_file_info(inner).type == pafs.FileType.File


def read_pairs(path: str) -> pa.Table:
    """A (src, tgt) table from a local corpus file or a Parquet URI, cleaned like the core."""
    if not is_uri(path):
        return read_corpus(path)
    fs, inner = pafs.FileSystem.from_uri(path)
    return clean_pairs(pq.read_table(inner, filesystem=fs, columns=["src", "tgt"]))


def clean_pairs(table: pa.Table) -> pa.Table:
    """Strip both sides and drop pairs where either is empty, as `read_corpus` does."""
    src = pc.utf8_trim_whitespace(table.column("src").cast(pa.string()))
    tgt = pc.utf8_trim_whitespace(table.column("tgt").cast(pa.string()))
    keep = pc.and_(pc.fill_null(pc.greater(pc.utf8_length(src), 0), False),
                   pc.fill_null(pc.greater(pc.utf8_length(tgt), 0), False))
    cleaned = table.set_column(table.schema.get_field_index("src"), "src", src)
    cleaned = cleaned.set_column(cleaned.schema.get_field_index("tgt"), "tgt", tgt)
    return cleaned.filter(keep)


def dev_pairs(cfg: ExperimentConfig, train: pa.Table | None) -> pa.Table:
    """The dev sentences evaluated at each report (the first rows of train when no dev)."""
    if cfg.data.dev:
        table = read_pairs(resolve_path(cfg.data.dev))
    else:
        table = (train if train is not None else read_pairs(resolve_path(cfg.data.train)))
        table = table.slice(0, 200)
    limit = cfg.training.dev_sentences
    return table.slice(0, limit) if limit > 0 else table


# ---------------------------------------------------------------------------------------
# The run's vocabulary, stored under STORAGE/RUN_NAME/s2s_vocab so a rerun of the same
# run (after the driver died) tokenizes exactly as the checkpoints expect.
# ---------------------------------------------------------------------------------------

class RunStorage:
    def __init__(self, storage_path: str, run_name: str):
        self.storage_path, self.run_name = resolve_path(storage_path), run_name
        if is_uri(self.storage_path):
            self.fs, root = pafs.FileSystem.from_uri(self.storage_path)
        else:
            self.fs, root = pafs.LocalFileSystem(), self.storage_path
        self.vocab_dir = f"{root.rstrip('/')}/{run_name}/s2s_vocab"

    def load_vocabularies(self) -> tuple[Vocabulary, Vocabulary] | None:
        files = {info.base_name: info.path for info in self._listing()}
        if "vocab.spm" in files:
            shared = Vocabulary(self._read(files["vocab.spm"]))
            return shared, shared
        if {"src.spm", "tgt.spm"} <= set(files):
            return Vocabulary(self._read(files["src.spm"])), Vocabulary(self._read(files["tgt.spm"]))
        return None

    def save_vocabularies(self, src: Vocabulary, tgt: Vocabulary) -> None:
        self.fs.create_dir(self.vocab_dir, recursive=True)
        named = {"vocab.spm": src} if src is tgt else {"src.spm": src, "tgt.spm": tgt}
        for name, vocab in named.items():
            with self.fs.open_output_stream(f"{self.vocab_dir}/{name}") as out:
                out.write(vocab.model_proto)

    def put_directory(self, local: Path, name: str) -> str:
        """Copy a local directory to STORAGE/RUN_NAME/<name>, replacing what was there."""
        target = f"{self.vocab_dir.rsplit('/', 1)[0]}/{name}"
        if self.fs.get_file_info(target).type == pafs.FileType.Directory:
            self.fs.delete_dir(target)
        self.fs.create_dir(target, recursive=True)
        pafs.copy_files(str(local), target, destination_filesystem=self.fs)
        return target

    def _listing(self) -> list[pafs.FileInfo]:
        if self.fs.get_file_info(self.vocab_dir).type != pafs.FileType.Directory:
            return []
        return self.fs.get_file_info(pafs.FileSelector(self.vocab_dir))

    def _read(self, path: str) -> bytes:
        with self.fs.open_input_stream(path) as stream:
            return stream.read()


def learn_and_store_vocabularies(cfg: ExperimentConfig, storage: RunStorage,
                                 train: pa.Table) -> tuple[Vocabulary, Vocabulary]:
    """Learn the vocabulary on the training split, as the core trainer does, and store it."""
    src, tgt = learn_vocabularies(train.column("src").to_pylist(), train.column("tgt").to_pylist(),
                                  cfg.data.tokenizer, cfg.training.seed)
    storage.save_vocabularies(src, tgt)
    return src, tgt


# ---------------------------------------------------------------------------------------
# The Ray Dataset (imports ray inside: this module is also used by ray-free unit tests)
# ---------------------------------------------------------------------------------------

def training_dataset(path: str, src: Vocabulary, tgt: Vocabulary, data: DataConfig,
                     workers: int, attempts: int = DATASET_ATTEMPTS) -> Any:
    """The tokenized training split, materialized in small blocks: columns id, src_ids, tgt_ids.

    Materializing on the driver does the tokenization once per run (not per epoch or per
    restart) and before the workers hold the cluster's CPUs, which Ray Data tasks need. A read
    the cluster broke (a node or actor lost) is started again, ``attempts`` times in all; an
    error of the data or of our code is raised at once.
    """
    for attempt in range(1, attempts):
        try:
            return _tokenized_dataset(path, src, tgt, data, workers)
        except Exception as err:
            if not lost_by_the_cluster(err):
                raise
            first_line = (str(err).splitlines() or [""])[0][:200]
            log.warning("reading %s: the cluster lost a node or actor under it (%s: %s); attempt %d of %d",
                        path, type(err).__name__, first_line, attempt + 1, attempts)
    return _tokenized_dataset(path, src, tgt, data, workers)


def lost_by_the_cluster(err: BaseException) -> bool:
    """True when ``err`` (or what caused it) is Ray losing a node, worker, actor or object,
    or an error Ray Data marks as its own (``raise ... from SystemException()``), not user code's."""
    from ray import exceptions as ray_errors
    from ray.data.exceptions import SystemException

    lost = (ray_errors.ActorDiedError, ray_errors.ActorUnavailableError, ray_errors.NodeDiedError,
            ray_errors.WorkerCrashedError, ray_errors.ObjectLostError, SystemException)
    seen: set[int] = set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, ray_errors.UserCodeException):
            return False
        if isinstance(cause, lost):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def _tokenized_dataset(path: str, src: Vocabulary, tgt: Vocabulary, data: DataConfig, workers: int) -> Any:
    ds = _read_with_ids(path)
    shared = src is tgt
    ds = ds.map_batches(tokenize_batch, batch_format="pyarrow", batch_size=1024, fn_kwargs={
        "src_proto": src.model_proto, "tgt_proto": None if shared else tgt.model_proto,
        "max_src": data.max_src_len, "max_tgt": data.max_tgt_len,
        # Subword regularization re-segments the texts on the workers at every draw.
        "keep_text": data.tokenizer.sampling_alpha > 0})
    tokenized = ds.materialize()
    rows = tokenized.count()
    if rows < workers:
        raise CorpusError(f"data.train: {rows} usable pairs cannot feed {workers} workers")
    per_block = max(1, math.ceil(rows / (workers * BLOCKS_PER_WORKER)))
    return tokenized.repartition(target_num_rows_per_block=per_block).materialize()


def _read_with_ids(path: str) -> Any:
    import ray.data

    if path.endswith(".parquet") or is_uri(path):
        ds = ray.data.read_parquet(path, include_row_hash=True)
        return ds.select_columns(["src", "tgt", "row_hash"]).rename_columns({"row_hash": "id"})
    # TSV / JSONL: read by the core on the driver; the row number is a stable id.
    table = read_corpus(path)
    table = table.append_column("id", pa.array(np.arange(table.num_rows, dtype=np.uint64)))
    return ray.data.from_arrow(table)


@functools.lru_cache(maxsize=4)
def _vocab(proto: bytes) -> Vocabulary:
    # Ray Data calls the UDF once per batch; building a SentencePiece processor each time
    # would cost more than encoding the batch.
    return Vocabulary(proto)


def tokenize_batch(batch: pa.Table, src_proto: bytes, tgt_proto: bytes | None,
                   max_src: int, max_tgt: int, keep_text: bool = False) -> pa.Table:
    """Clean, encode and truncate a batch like the core's `encode_corpus` (and keep the
    cleaned src/tgt texts too with `keep_text`)."""
    batch = clean_pairs(batch)
    src_vocab = _vocab(src_proto)
    tgt_vocab = src_vocab if tgt_proto is None else _vocab(tgt_proto)
    src = truncate(src_vocab.encode(batch.column("src").to_pylist()), max_src)
    tgt = truncate(tgt_vocab.encode(batch.column("tgt").to_pylist()), max_tgt)
    ids = pa.list_(pa.int32())
    texts = {"src": batch.column("src"), "tgt": batch.column("tgt")} if keep_text else {}
    return pa.table({"id": batch.column("id").cast(pa.uint64()),
                     "src_ids": pa.array(src, type=ids), "tgt_ids": pa.array(tgt, type=ids),
                     **texts})


def read_shard(iterator: Any) -> Shard:
    """Pull a worker's whole shard out of its Ray Data iterator into memory."""
    ids, src, tgt, src_texts, tgt_texts = [], [], [], [], []
    for batch in iterator.iter_batches(batch_size=4096, batch_format="pyarrow"):
        ids.append(batch.column("id").to_numpy())
        src.extend(batch.column("src_ids").to_pylist())
        tgt.extend(batch.column("tgt_ids").to_pylist())
        if "src" in batch.column_names:           # kept for subword regularization
            src_texts.extend(batch.column("src").to_pylist())
            tgt_texts.extend(batch.column("tgt").to_pylist())
    all_ids = np.concatenate(ids).astype(np.uint64) if ids else np.zeros(0, dtype=np.uint64)
    return Shard(all_ids, src, tgt, src_texts or None, tgt_texts or None)


class ShardFeed:
    """The training loop's feed on one rank (`train_loop.Feed`), Ray-free.

    The epoch's data position is the set of example ids all ranks have trained on
    (`seen`, checkpointed and restored with the rank's state): a resumed epoch trains on
    what is left, however Ray Data reshards the rows. Every rank takes as many steps as
    the one with the most batches (`split_to_count`). With subword regularization the
    texts are re-segmented at each draw, seeded by the examples' stable ids, so a restart
    draws the same. With `record_dir`, rank 0 appends the ids every rank trained on to
    record_dir/examples.jsonl at each evaluation (an audit trail for the tests).
    """

    def __init__(self, shard: Shard, batch_tokens: int, seed: int,
                 resegmenter: Resegmenter | None = None, record_dir: str = ""):
        self.shard, self.batch_tokens, self.seed = shard, batch_tokens, seed
        self.resegmenter, self.record_dir = resegmenter, record_dir
        self.seen: set[int] = set()           # ids trained on this epoch, by every rank
        self.new_ids: list[int] = []          # this rank's, since the last evaluation

    def epoch(self, progress: Progress, ranks: Any) -> list[list[int]]:
        positions = self.shard.remaining(self.seen)
        batches = self.shard.batches(positions, self.batch_tokens, self.seed + ranks.rank,
                                     progress.epoch)
        return split_to_count(batches, ranks.max(len(batches)))

    def batch(self, positions: list[int], epoch: int) -> Batch:
        if self.resegmenter is None:
            return self.shard.collate(positions)
        return self.resegmenter.collate(self.shard.src_texts, self.shard.tgt_texts, positions,
                                        epoch, self.shard.example_ids(positions))

    def trained(self, positions: list[int]) -> None:
        self.new_ids.extend(self.shard.example_ids(positions))

    def window_done(self, progress: Progress, ranks: Any, epoch_done: bool) -> int:
        new_ids = ranks.gather(self.new_ids)
        if self.record_dir and ranks.rank == 0:
            record_examples(Path(self.record_dir), progress, new_ids)
        self.seen = set() if epoch_done else epoch_seen_after(self.seen, new_ids)
        self.new_ids = []
        return sum(len(ids) for ids in new_ids)


def record_examples(out: Path, progress: Progress, new_ids: list[list[int]]) -> None:
    """Append the example ids each rank trained on to out/examples.jsonl."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "examples.jsonl", "a", encoding="utf-8") as log_file:
        for rank, ids in enumerate(new_ids):
            log_file.write(json.dumps({"epoch": progress.epoch, "rank": rank,
                                       "step": progress.step, "ids": ids}) + "\n")
