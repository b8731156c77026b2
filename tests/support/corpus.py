"""Reading back one split that `corpus.write_splits` wrote."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from s2s.corpus import CorpusError, read_corpus


def read_split(data_dir: str | Path, name: str) -> pa.Table:
    """Split `name` (e.g. "train") of a directory written by `write_splits`."""
    path = Path(data_dir) / f"{name}.parquet"
    if not path.is_file():
        found = sorted(p.stem for p in Path(data_dir).glob("*.parquet"))
        raise CorpusError(f"{path}: no split {name!r} in {data_dir} (found: {found})")
    return read_corpus(path)
