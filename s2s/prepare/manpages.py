"""Summarization corpus: man page DESCRIPTION -> NAME one-liner, from Debian's man-pages.

    python -c "from s2s.prepare import prepare_manpages; print(prepare_manpages('data/manpages'))"

The pages come from the `manpages` and `manpages-dev` .deb packages (fetched with
`apt-get download`, unpacked with `dpkg-deb -x` into the cache), so the corpus does not
depend on what happens to be installed in /usr/share/man. Each page's roff source is
reduced to plain text with a deliberately small roff reader: enough for the man(7)
macros these pages use, not a troff implementation.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import re
import subprocess
import tempfile
from pathlib import Path

from tqdm import tqdm

from s2s.corpus import SPLITS, CorpusError, pairs_table, read_meta, write_splits
from s2s.prepare.registry import CorpusBuilder

log = logging.getLogger(__name__)

DEB_PACKAGES = ("manpages", "manpages-dev")
CACHE_SUBDIR = "debian-manpages"
# page name hash bucket (0-99) -> split; ~90/5/5
DEV_BUCKETS = range(90, 95)
TEST_BUCKETS = range(95, 100)

DESCRIPTION_TITLES = ("DESCRIPTION", "SYNOPSIS AND DESCRIPTION")  # the latter: rpc(3), xdr(3)
# man(7) font macros: their arguments are text; two-letter ones alternate fonts and
# join their arguments without spaces (".BR read (2)" -> "read(2)")
FONT_MACROS = {"B", "I", "R", "SM", "SB"}
ALTERNATING_FONT_MACROS = {"BR", "BI", "IB", "IR", "RB", "RI"}
# requests starting a block that is not prose (tables, macro definitions, ignored
# text) -> the line ending it
SKIPPED_BLOCKS = {"TS": ".TE", "de": "..", "ig": ".."}
GLYPHS = {
    "aq": "'", "dq": '"', "lq": '"', "rq": '"', "oq": "'", "cq": "'", "ga": "`", "ha": "^",
    "ti": "~", "em": "—", "en": "–", "hy": "-", "mi": "-", "bu": "•", "+-": "±", "mu": "×",
    "de": "°", "dg": "†", "co": "©", "rg": "®", "sc": "§", "fm": "′", "ra": "→", "la": "←",
    "rs": "\\", "sl": "/", "12": "½", "<=": "≤", ">=": "≥", "!=": "≠", "==": "≡",
}
# single-character escapes; any other "\x" stands for the character itself
CHAR_ESCAPES = {
    "e": "\\", "-": "-", "~": " ", " ": " ", "0": " ", "t": " ",
    "&": "", "%": "", ":": "", "|": "", "^": "", "c": "", "{": "", "}": "", "/": "", ",": "",
}
_ESCAPE = re.compile(
    r"\\(?:"
    r"(?P<font>f(?:\[[^\]]*\]|\(..|.))"                  # \fB \f(CW \f[BI]: font change
    r"|(?P<size>s(?:[+-]?\d|\(..|\[[^\]]*\]))"           # \s-1 \s0: size change
    r"|(?P<reg>[*n](?:\[[^\]]*\]|\(..|.))"               # \*(lq \n(xx: strings, registers
    r"|\((?P<glyph2>..)|\[(?P<glyph>[^\]]*)\]"           # \(em \[aq]: named glyphs
    r"|(?P<char>.))"
)
_MACRO_ARG = re.compile(r'"((?:[^"]|"")*)"?|((?:\\.|\S)+)')
_NAME_DASH = re.compile(r"\s\\-\s|\s\\\(em\s|\s\\\[em\]\s")
_SPACES = re.compile(r"\s+")


def prepare_manpages(
    out_dir: str | Path, cache_dir: str | Path = "data/cache", max_src_words: int = 200
) -> dict:
    """Write train/dev/test splits of (DESCRIPTION text, NAME summary) pairs, split by page.

    Returns the meta written to `out_dir/meta.json`.
    """
    man_root, packages = fetch_manpages(cache_dir)
    pairs, skipped = collect_pairs(man_root, max_src_words)
    splits: dict[str, list[tuple[str, str]]] = {name: [] for name in SPLITS}
    for page, src, tgt in pairs:
        splits[split_of_page(page)].append((src, tgt))
    meta = {
        "task": "summarization",
        "source": "Debian " + ", ".join(packages),
        "src": f"DESCRIPTION section as plain text, first {max_src_words} words",
        "tgt": "NAME section summary (the text after '\\-')",
        "split": "sha1(page file name) % 100: 0-89 train, 90-94 dev, 95-99 test",
        "max_src_words": max_src_words,
        "skipped_pages": skipped,
    }
    write_splits(out_dir, {name: pairs_table(rows) for name, rows in splits.items()}, meta)
    return read_meta(out_dir)


def fetch_manpages(cache_dir: str | Path) -> tuple[Path, list[str]]:
    """(usr/share/man of the unpacked .debs in the cache, ["manpages_6.03-2_all.deb", ...]).

    Downloads and unpacks the packages on first use only.
    """
    root = Path(cache_dir) / CACHE_SUBDIR
    sources = root / "sources.json"
    if not sources.is_file():
        root.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=root.parent) as tmp:
            debs = _download_debs(Path(tmp))
            unpacked = Path(tmp) / "root"
            for deb in debs:
                _run(["dpkg-deb", "-x", str(deb), str(unpacked)])
            (unpacked / "sources.json").write_text(json.dumps([deb.name for deb in debs]) + "\n")
            # rename last so an interrupted run never leaves a partial tree in the cache
            os.replace(unpacked, root)
    return root / "usr" / "share" / "man", json.loads(sources.read_text())


def _download_debs(dest: Path) -> list[Path]:
    """`apt-get download` the packages into `dest`; refresh the package lists once if needed."""
    cmd = ["apt-get", "download", *DEB_PACKAGES]
    try:
        _run(cmd, cwd=dest)
    except CorpusError:
        log.info("apt-get download failed; running apt-get update and retrying")
        _run(["apt-get", "update"])
        _run(cmd, cwd=dest)
    return sorted(dest.glob("*.deb"))


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    """Run a command, raising CorpusError with its stderr when it fails."""
    try:
        result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise CorpusError(f"{cmd[0]} not found: man pages are fetched with apt-get and dpkg-deb") from None
    if result.returncode != 0:
        raise CorpusError(f"{' '.join(cmd)} failed: {result.stderr[-2000:]}")


def collect_pairs(man_root: Path, max_src_words: int) -> tuple[list[tuple[str, str, str]], dict]:
    """([(page file name, description, summary)] sorted by page, {reason: skipped count}).

    Symlinks and `.so` pages are aliases of another page and are skipped, as are pages
    without a NAME summary or a DESCRIPTION.
    """
    files = sorted(man_root.glob("man*/*.gz"))
    if not files:
        raise CorpusError(f"{man_root}: no man pages found")
    pairs, skipped = [], {"alias": 0, "no_name": 0, "no_description": 0}
    for path in tqdm(files, desc="man pages", unit="page", disable=None):
        # a symlink is an alias, like a .so page; "" makes parse_page say so
        roff = "" if path.is_symlink() else gzip.decompress(path.read_bytes()).decode("utf-8", "replace")
        reason, pair = parse_page(roff, max_src_words)
        if pair is None:
            skipped[reason] += 1
        else:
            pairs.append((path.name.removesuffix(".gz"), *pair))
    return pairs, skipped


def parse_page(roff: str, max_src_words: int) -> tuple[str, tuple[str, str] | None]:
    """("ok", (description, summary)) or (skip reason, None) for one page's roff source."""
    if not roff or is_alias(roff):
        return "alias", None
    sections = split_sections(roff)
    summary = name_summary(sections.get("NAME", []))
    if not summary:
        return "no_name", None
    body = next((sections[title] for title in DESCRIPTION_TITLES if title in sections), [])
    words = roff_to_text(body).split()
    if not words:
        return "no_description", None
    return "ok", (" ".join(words[:max_src_words]), summary)


def is_alias(roff: str) -> bool:
    """True for a `.so other/page` redirect page."""
    lines = [line for line in roff.splitlines() if line.strip() and not _is_comment(line)]
    return bool(lines) and lines[0].startswith(".so ")


def split_sections(roff: str) -> dict[str, list[str]]:
    """{section title in upper case: its source lines}, for each `.SH` section."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in roff.splitlines():
        if line.startswith(".SH"):
            title = " ".join(unescape(arg) for arg in macro_args(line[3:])).upper()
            current = sections.setdefault(title, [])
        elif current is not None:
            current.append(line)
    return sections


def name_summary(name_lines: list[str]) -> str:
    """The summary in a NAME section: "read, pread \\- read from a file" -> "read from a file"."""
    raw = " " + " ".join(line for line in name_lines if not _is_comment(line)) + " "
    parts = _NAME_DASH.split(raw, maxsplit=1)
    return roff_to_text([parts[1]]) if len(parts) == 2 else ""


def roff_to_text(lines: list[str]) -> str:
    """Plain text of roff source lines: requests dropped, font macro text kept, escapes resolved."""
    words: list[str] = []
    block_end = None
    for line in lines:
        if block_end is not None:
            block_end = None if line.strip() == block_end else block_end
        elif line.startswith((".", "'")):
            request, _, args = line[1:].strip().partition(" ")
            block_end = SKIPPED_BLOCKS.get(request)
            words.append(_request_text(request, args))
        else:
            words.append(unescape(line))
    return _SPACES.sub(" ", " ".join(words)).strip()


def _request_text(request: str, args: str) -> str:
    """Text carried by a request line: font macro and sub-heading arguments, else nothing."""
    if request in ALTERNATING_FONT_MACROS:
        return "".join(unescape(arg) for arg in macro_args(args))
    if request in FONT_MACROS or request == "SS":
        return " ".join(unescape(arg) for arg in macro_args(args))
    if request == "IP":  # .IP tag [indent]: the tag is text (often a bullet), the indent not
        return "".join(unescape(arg) for arg in macro_args(args)[:1])
    return ""


def macro_args(args: str) -> list[str]:
    """Split macro arguments like roff: spaces separate, "double quotes" group, "" is a quote."""
    args = _strip_comment(args)
    return [quoted.replace('""', '"') if bare is None else bare
            for quoted, bare in ((m.group(1), m.group(2)) for m in _MACRO_ARG.finditer(args))]


def unescape(text: str) -> str:
    """Resolve roff escapes in a line of text: fonts/sizes dropped, glyphs to Unicode."""
    return _ESCAPE.sub(_resolve_escape, _strip_comment(text))


def _resolve_escape(match: re.Match) -> str:
    if match["font"] or match["size"] or match["reg"]:
        return ""
    glyph = match["glyph2"] or match["glyph"]
    if glyph is not None:
        return _glyph(glyph)
    return CHAR_ESCAPES.get(match["char"], match["char"])


def _glyph(name: str) -> str:
    """A named glyph: known names, `uXXXX` code points, otherwise dropped."""
    if name in GLYPHS:
        return GLYPHS[name]
    if re.fullmatch(r"u[0-9A-Fa-f]{4,6}", name):
        return chr(int(name[1:], 16))
    return ""


def _strip_comment(text: str) -> str:
    r"""Text before a `\"` comment (a `\\` before it is an escaped backslash, not a comment)."""
    match = re.search(r'(?<!\\)(?:\\\\)*\\"', text)
    return text if match is None else text[: match.start()] + match.group(0)[:-2]


def _is_comment(line: str) -> bool:
    return line.startswith(('.\\"', "'\\\"", '\\"'))


def split_of_page(page: str) -> str:
    """Deterministic split of a page by the hash of its file name (e.g. "read.2")."""
    bucket = int.from_bytes(hashlib.sha1(page.encode()).digest()[:8], "big") % 100
    return "dev" if bucket in DEV_BUCKETS else "test" if bucket in TEST_BUCKETS else "train"



def _add_arguments(parser) -> None:
    parser.add_argument("--max-src-words", type=int, default=200)


BUILDER = CorpusBuilder("manpages", "man page DESCRIPTION -> NAME one-liner",
                        lambda args: prepare_manpages(args.out, args.cache, args.max_src_words),
                        _add_arguments, downloads=True)
