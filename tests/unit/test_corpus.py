"""Unit tests for s2s.corpus: every reader format and every CorpusError case, on tiny files."""

import json
import logging

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from s2s.corpus import CorpusError, pairs_table, read_corpus, read_meta, write_splits
from tests.support.corpus import read_split


def rows(table: pa.Table) -> list[tuple[str, str]]:
    return list(zip(table["src"].to_pylist(), table["tgt"].to_pylist()))


def write_text(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


# --- TSV ---------------------------------------------------------------------------------


def test_tsv_reads_pairs_and_schema(tmp_path):
    table = read_corpus(write_text(tmp_path / "c.tsv", "a b\tx y\nc\tz\n"))
    assert table.schema == pa.schema([("src", pa.string()), ("tgt", pa.string())])
    assert rows(table) == [("a b", "x y"), ("c", "z")]


def test_tsv_skips_header_blank_lines_and_crlf(tmp_path):
    table = read_corpus(write_text(tmp_path / "c.tsv", "src\ttgt\r\na\tx\r\n\r\nb\ty\r\n"))
    assert rows(table) == [("a", "x"), ("b", "y")]


def test_tsv_line_without_tab_names_line(tmp_path):
    path = write_text(tmp_path / "c.tsv", "a\tx\nno tab here\n")
    with pytest.raises(CorpusError, match=r"c\.tsv: line 2 has no tab"):
        read_corpus(path)


def test_tsv_line_with_extra_tab_names_line(tmp_path):
    path = write_text(tmp_path / "c.tsv", "a\tx\ty\n")
    with pytest.raises(CorpusError, match=r"line 1 has 3 tab-separated fields"):
        read_corpus(path)


def test_tsv_invalid_utf8_names_line(tmp_path):
    path = tmp_path / "c.tsv"
    path.write_bytes(b"a\tx\nb\ty\nc\t\xff\xfe\n")
    with pytest.raises(CorpusError, match=r"c\.tsv: line 3 is not valid UTF-8"):
        read_corpus(path)


# --- JSONL -------------------------------------------------------------------------------


def test_jsonl_reads_pairs_ignoring_extra_keys(tmp_path):
    lines = [{"src": "a", "tgt": "x", "id": 1}, {"tgt": "y", "src": "b"}]
    path = write_text(tmp_path / "c.jsonl", "\n".join(json.dumps(line) for line in lines) + "\n\n")
    assert rows(read_corpus(path)) == [("a", "x"), ("b", "y")]


def test_jsonl_malformed_line_names_line(tmp_path):
    path = write_text(tmp_path / "c.jsonl", '{"src": "a", "tgt": "x"}\n{"src": "b", \n')
    with pytest.raises(CorpusError, match=r"c\.jsonl: line 2 is not valid JSON"):
        read_corpus(path)


def test_jsonl_non_object_line(tmp_path):
    path = write_text(tmp_path / "c.jsonl", '["a", "x"]\n')
    with pytest.raises(CorpusError, match=r"line 1 is not a JSON object"):
        read_corpus(path)


def test_jsonl_missing_key_names_missing_and_found(tmp_path):
    path = write_text(tmp_path / "c.jsonl", '{"src": "a", "target": "x"}\n')
    with pytest.raises(CorpusError, match=r"line 1: missing \['tgt'\]; found \['src', 'target'\]"):
        read_corpus(path)


def test_jsonl_non_string_value(tmp_path):
    path = write_text(tmp_path / "c.jsonl", '{"src": "a", "tgt": 3}\n')
    with pytest.raises(CorpusError, match=r"line 1: 'tgt' is not a string"):
        read_corpus(path)


def test_jsonl_invalid_utf8_names_line(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_bytes(b'{"src": "a", "tgt": "x"}\n{"src": "\xc3", "tgt": "y"}\n')
    with pytest.raises(CorpusError, match=r"line 2 is not valid UTF-8"):
        read_corpus(path)


# --- Parquet -----------------------------------------------------------------------------


def test_parquet_drops_extra_columns(tmp_path):
    path = tmp_path / "c.parquet"
    pq.write_table(pa.table({"id": [1, 2], "tgt": ["x", "y"], "src": ["a", "b"]}), path)
    table = read_corpus(path)
    assert table.column_names == ["src", "tgt"]
    assert rows(table) == [("a", "x"), ("b", "y")]


def test_parquet_missing_columns_named(tmp_path):
    path = tmp_path / "c.parquet"
    pq.write_table(pa.table({"source": ["a"], "target": ["x"]}), path)
    with pytest.raises(CorpusError, match=r"missing \['src', 'tgt'\]; found \['source', 'target'\]"):
        read_corpus(path)


def test_parquet_nulls_are_dropped_as_empty(tmp_path):
    path = tmp_path / "c.parquet"
    pq.write_table(pa.table({"src": ["a", None], "tgt": ["x", "y"]}), path)
    assert rows(read_corpus(path)) == [("a", "x")]


def test_parquet_unreadable_file(tmp_path):
    path = write_text(tmp_path / "c.parquet", "not parquet at all")
    with pytest.raises(CorpusError, match=r"c\.parquet: not a readable Parquet file"):
        read_corpus(path)


def test_parquet_binary_column_with_invalid_utf8(tmp_path):
    path = tmp_path / "c.parquet"
    pq.write_table(pa.table({"src": pa.array([b"\xff"], pa.binary()), "tgt": ["x"]}), path)
    with pytest.raises(CorpusError, match=r"src/tgt must be string columns"):
        read_corpus(path)


# --- common checks -----------------------------------------------------------------------


def test_strips_and_drops_empty_rows_with_warning(tmp_path, caplog):
    path = write_text(tmp_path / "c.tsv", "  a  \t x \n \ty\nb\t  \nc\tz\n")
    with caplog.at_level(logging.WARNING, logger="s2s.corpus"):
        table = read_corpus(path)
    assert rows(table) == [("a", "x"), ("c", "z")]
    assert "dropped 2 of 4 rows" in caplog.text


@pytest.mark.parametrize("text", ["", "\n\n", "src\ttgt\n", " \t \n"])
def test_empty_corpus(tmp_path, text):
    path = write_text(tmp_path / "c.tsv", text)
    with pytest.raises(CorpusError, match=r"c\.tsv: empty corpus"):
        read_corpus(path)


def test_missing_file(tmp_path):
    with pytest.raises(CorpusError, match=r"nope\.tsv: no such file"):
        read_corpus(tmp_path / "nope.tsv")


def test_unknown_extension(tmp_path):
    path = write_text(tmp_path / "c.csv", "a,x\n")
    with pytest.raises(CorpusError, match=r"c\.csv: unknown extension '\.csv'; expected one of"):
        read_corpus(path)


# --- splits ------------------------------------------------------------------------------


def test_write_and_read_splits_round_trip(tmp_path):
    splits = {"train": pairs_table([("a", "x"), ("b", "y")]), "dev": pairs_table([("c", "z")])}
    write_splits(tmp_path / "out", splits, {"source": "unit test"})
    assert rows(read_split(tmp_path / "out", "train")) == [("a", "x"), ("b", "y")]
    assert rows(read_split(tmp_path / "out", "dev")) == [("c", "z")]
    assert read_meta(tmp_path / "out") == {"source": "unit test", "counts": {"train": 2, "dev": 1}}


def test_write_splits_keeps_only_src_tgt(tmp_path):
    table = pa.table({"tgt": ["x"], "extra": [1], "src": ["a"]})
    write_splits(tmp_path, {"train": table}, {})
    assert pq.read_schema(tmp_path / "train.parquet").names == ["src", "tgt"]


def test_read_split_missing_names_available(tmp_path):
    write_splits(tmp_path, {"train": pairs_table([("a", "x")])}, {})
    with pytest.raises(CorpusError, match=r"no split 'test'.*found: \['train'\]"):
        read_split(tmp_path, "test")


def test_read_meta_missing(tmp_path):
    with pytest.raises(CorpusError, match=r"meta\.json: no such file"):
        read_meta(tmp_path)
