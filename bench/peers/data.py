"""The shared vocabulary and the files each tool reads.

One SentencePiece BPE model is learned with s2s's own `learn_vocabularies` (the function and
settings `s2s train` uses, so s2s's run learns the identical model: the harness checks the
bytes of the checkpoint's vocab.spm against it). Joey NMT and OpenNMT-py get the training,
dev and test sets already segmented by that model, pieces separated by single spaces, and a
vocabulary file listing its pieces: all three tools see the same segmentation of every verse
and the same 8,000 vocabulary entries (7,996 pieces + 4 specials, each tool's own). Their
outputs are pieces again, turned back into text by the same model before scoring.
"""
from __future__ import annotations

import hashlib
import json
import unicodedata
from pathlib import Path
from typing import Iterable, Sequence

import sentencepiece as spm

SPECIAL_PIECES = ("<pad>", "<unk>", "<s>", "</s>")


class SharedVocab:
    """A SentencePiece model as the peers see it: pieces in, pieces out."""

    def __init__(self, model_proto: bytes):
        self.model_proto = model_proto
        self.sp = spm.SentencePieceProcessor(model_proto=model_proto)

    @classmethod
    def load(cls, path: str | Path) -> "SharedVocab":
        return cls(Path(path).read_bytes())

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(self.model_proto)

    def digest(self) -> str:
        return hashlib.sha256(self.model_proto).hexdigest()

    def __len__(self) -> int:
        return self.sp.get_piece_size()

    def pieces(self) -> list[str]:
        """Every ordinary piece, in id order, without the control and unknown pieces."""
        out = []
        for i in range(len(self)):
            if self.sp.is_control(i) or self.sp.is_unknown(i):
                continue
            out.append(self.sp.id_to_piece(i))
        return out

    def segment(self, texts: Sequence[str], max_len: int = 0) -> list[str]:
        """Each text as space-separated pieces; max_len > 0 cuts to max_len - 1 pieces, as
        s2s's `truncate` does (room for eos/bos)."""
        out = []
        for pieces in self.sp.encode(list(texts), out_type=str):
            if max_len > 0:
                pieces = pieces[: max_len - 1]
            out.append(" ".join(pieces))
        return out

    def detokenize(self, lines: Iterable[str]) -> list[str]:
        """Space-separated pieces (a peer's output) back to text. Each tool's own special
        tokens are dropped, except unk, which becomes SentencePiece's ' ⁇ ' as in s2s."""
        out = []
        for line in lines:
            pieces = [p for p in line.split() if p not in DROPPED_TOKENS]
            out.append(self.sp.decode_pieces(pieces))
        return out


# What a peer may print besides pieces: pads and sentence marks (Joey, OpenNMT-py).
DROPPED_TOKENS = frozenset({"<pad>", "<blank>", "<s>", "</s>"})


def check_pieces(pieces: Iterable[str]) -> None:
    """The peers split lines on spaces and vocabulary files on line breaks (Python's
    splitlines, which also breaks on U+2028, U+0085, ...): a piece holding any such
    character would be read as two. SentencePiece writes spaces as U+2581, so none should."""
    for piece in pieces:
        if not piece or any(c.isspace() or unicodedata.category(c) in ("Cc", "Zl", "Zp")
                            for c in piece) or len(piece.splitlines()) != 1:
            raise ValueError(f"piece {piece!r} cannot be written as one token on one line")


def write_vocab(vocab: SharedVocab, path: str | Path) -> int:
    """One piece per line, no counts (Joey NMT's voc_file and OpenNMT-py's src_vocab both
    read that); each tool adds its own specials in front. Returns the number of pieces."""
    pieces = vocab.pieces()
    check_pieces(pieces)
    Path(path).write_text("".join(p + "\n" for p in pieces), encoding="utf-8")
    return len(pieces)


def write_lines(path: str | Path, lines: Iterable[str]) -> None:
    text = "".join(line.replace("\n", " ") + "\n" for line in lines)
    Path(path).write_text(text, encoding="utf-8")


def read_lines(path: str | Path) -> list[str]:
    """Lines as written by write_lines or by a peer (split on '\\n' only, unlike splitlines)."""
    text = Path(path).read_text(encoding="utf-8")
    if text.endswith("\n"):
        text = text[:-1]
    return text.split("\n") if text else []


def write_parallel(vocab: SharedVocab, src: Sequence[str], tgt: Sequence[str],
                   prefix: str | Path, langs: tuple[str, str], max_len: int = 0) -> None:
    """PREFIX.<src lang> and PREFIX.<tgt lang>, one segmented verse per line."""
    prefix = Path(prefix)
    for texts, lang in ((src, langs[0]), (tgt, langs[1])):
        lines = vocab.segment(texts, max_len)
        for line in lines:
            if not line:
                raise ValueError(f"an empty line in {prefix}.{lang}: the peers skip or reject them")
        write_lines(f"{prefix}.{lang}", lines)


def fingerprint(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]
