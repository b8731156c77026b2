"""User corpora: read TSV / JSONL / Parquet into one Arrow table shape, write and read splits.

Every corpus, whatever its file format, becomes a `pyarrow.Table` with exactly two string
columns, `src` and `tgt`. Prepared data sets are a directory of `{split}.parquet` files plus
`meta.json` (where the data came from, and row counts per split):

    data/bible-en-fr/
        train.parquet  dev.parquet  test.parquet  meta.json
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

COLUMNS = ("src", "tgt")
SCHEMA = pa.schema([(name, pa.string()) for name in COLUMNS])
TSV_HEADER = "src\ttgt"
SPLITS = ("train", "dev", "test")


class CorpusError(Exception):
    """A problem with a user's corpus file; the message names the file (and line)."""


def read_corpus(path: str | Path) -> pa.Table:
    """Read a `.tsv`, `.jsonl` or `.parquet` corpus into a (src, tgt) string table.

    Both sides are stripped of surrounding whitespace; rows where either side is then
    empty (or null) are dropped with a warning. Raises CorpusError on any problem.
    """
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: no such file")
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        known = ", ".join(sorted(_READERS))
        raise CorpusError(f"{path}: unknown extension {path.suffix!r}; expected one of {known}")
    return _drop_empty_pairs(path, reader(path))


def write_splits(out_dir: str | Path, splits: dict[str, pa.Table], meta: dict) -> None:
    """Write `out_dir/{name}.parquet` per split and `out_dir/meta.json` (meta + row counts)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, table in splits.items():
        # select + cast so every split on disk has exactly the (src, tgt) string schema
        pq.write_table(table.select(list(COLUMNS)).cast(SCHEMA), out_dir / f"{name}.parquet")
    full_meta = {**meta, "counts": {name: table.num_rows for name, table in splits.items()}}
    text = json.dumps(full_meta, indent=2, ensure_ascii=False) + "\n"
    (out_dir / "meta.json").write_text(text, encoding="utf-8")


def read_meta(data_dir: str | Path) -> dict:
    """Read the `meta.json` of a directory written by `write_splits`."""
    path = Path(data_dir) / "meta.json"
    if not path.is_file():
        raise CorpusError(f"{path}: no such file (not a prepared data directory?)")
    return json.loads(path.read_text(encoding="utf-8"))


def pairs_table(pairs: list[tuple[str, str]]) -> pa.Table:
    """A (src, tgt) table from a list of (src, tgt) string pairs."""
    return pa.table([[src for src, _ in pairs], [tgt for _, tgt in pairs]], schema=SCHEMA)


def _drop_empty_pairs(path: Path, table: pa.Table) -> pa.Table:
    """Strip both columns and drop rows with an empty or null side (logged, counted)."""
    src = pc.fill_null(pc.utf8_trim_whitespace(table["src"]), "")
    tgt = pc.fill_null(pc.utf8_trim_whitespace(table["tgt"]), "")
    keep = pc.and_(pc.not_equal(src, ""), pc.not_equal(tgt, ""))
    cleaned = pa.table([src, tgt], schema=SCHEMA).filter(keep)
    dropped = table.num_rows - cleaned.num_rows
    if cleaned.num_rows == 0:
        raise CorpusError(f"{path}: empty corpus (no row has both a non-empty src and tgt)")
    if dropped:
        log.warning("%s: dropped %d of %d rows with an empty src or tgt", path, dropped, table.num_rows)
    return cleaned


def _decode_utf8(path: Path) -> str:
    """Read a text file as UTF-8, naming the first line with invalid bytes on failure."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line_no = data.count(b"\n", 0, err.start) + 1
        raise CorpusError(f"{path}: line {line_no} is not valid UTF-8 ({err.reason})") from None


def _text_lines(path: Path) -> list[tuple[int, str]]:
    """(1-based line number, line) for every non-blank line, CRLF tolerated.

    Splits on "\\n" only: str.splitlines would also split on characters such as U+2028
    that can legitimately appear inside a sentence.
    """
    lines = _decode_utf8(path).split("\n")
    return [(no, line.rstrip("\r")) for no, line in enumerate(lines, 1) if line.strip()]


def _read_tsv(path: Path) -> pa.Table:
    """`src<TAB>tgt` per line; an optional first line `src<TAB>tgt` is a header."""
    lines = _text_lines(path)
    if lines and lines[0][1].strip() == TSV_HEADER:
        lines = lines[1:]
    src, tgt = [], []
    for line_no, line in lines:
        fields = line.split("\t")
        if len(fields) != 2:
            what = "has no tab" if len(fields) == 1 else f"has {len(fields)} tab-separated fields"
            raise CorpusError(f"{path}: line {line_no} {what}; expected src<TAB>tgt")
        src.append(fields[0])
        tgt.append(fields[1])
    return pa.table([src, tgt], schema=SCHEMA)


def _read_jsonl(path: Path) -> pa.Table:
    """One JSON object per line with string `src` and `tgt` (other keys ignored)."""
    src, tgt = [], []
    for line_no, line in _text_lines(path):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise CorpusError(f"{path}: line {line_no} is not valid JSON ({err.msg})") from None
        if not isinstance(record, dict):
            raise CorpusError(f"{path}: line {line_no} is not a JSON object")
        _check_columns(path, list(record), where=f"line {line_no}")
        for column, values in (("src", src), ("tgt", tgt)):
            value = record[column]
            if value is not None and not isinstance(value, str):
                raise CorpusError(f"{path}: line {line_no}: {column!r} is not a string")
            values.append(value)
    return pa.table([src, tgt], schema=SCHEMA)


def _read_parquet(path: Path) -> pa.Table:
    """Columns `src` and `tgt` (extra columns are not read)."""
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise CorpusError(f"{path}: not a readable Parquet file ({err})") from None
    _check_columns(path, schema.names, where="columns")
    table = pq.read_table(path, columns=list(COLUMNS))
    try:
        return table.cast(SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        types = {name: str(schema.field(name).type) for name in COLUMNS}
        raise CorpusError(f"{path}: src/tgt must be string columns, got {types} ({err})") from None


def _check_columns(path: Path, present: list[str], where: str) -> None:
    """Raise if `src` or `tgt` is missing, naming what is missing and what exists."""
    missing = [name for name in COLUMNS if name not in present]
    if missing:
        raise CorpusError(f"{path}: {where}: missing {missing}; found {sorted(present)}")


_READERS: dict[str, Callable[[Path], pa.Table]] = {
    ".tsv": _read_tsv,
    ".jsonl": _read_jsonl,
    ".parquet": _read_parquet,
}
