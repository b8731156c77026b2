"""`s2s produce` line splitting and `s2s consume` formatting."""
import json

from s2s.stream.console import format_record, split_line

from .fakes import Record


def test_split_line():
    assert split_line("k1\thello world", "\t") == (b"k1", b"hello world")
    assert split_line("no key here", "\t") == (None, b"no key here")
    assert split_line("a:b:c", ":") == (b"a", b"b:c")
    assert split_line("plain", None) == (None, b"plain")


def test_format_record():
    record = Record("out", 0, 3, "été".encode(), key=b"k", headers=[("s2s-model-name", b"toy")])
    assert format_record(record, show_headers=False) == "k\tété"
    key, value, headers = format_record(record, show_headers=True).split("\t")
    assert json.loads(headers) == {"s2s-model-name": "toy"}
    assert format_record(Record("out", 0, 0, None, key=None), False) == "\t"
