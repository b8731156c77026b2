"""The corpus builders `s2s data prepare` offers, found by name.

A builder is one module of this package that defines `BUILDER = CorpusBuilder(...)`: its
subcommand name, its help line, the options it adds to the parser and the function that
builds the splits from the parsed arguments. `cli.py` lists whatever modules define one, so
a new corpus is one new module (docs/architecture.md, "How to extend").
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass


def _no_options(parser: argparse.ArgumentParser) -> None:
    pass


@dataclass(frozen=True)
class CorpusBuilder:
    name: str                                                  # `s2s data prepare NAME`
    help: str
    build: Callable[[argparse.Namespace], dict]                # args -> meta (with counts)
    add_arguments: Callable[[argparse.ArgumentParser], None] = _no_options
    downloads: bool = False                                    # takes --cache (download cache)


def corpus_builders() -> list[CorpusBuilder]:
    """Every builder module of s2s.prepare, in name order."""
    from s2s import prepare
    found = []
    for info in pkgutil.iter_modules(prepare.__path__):
        module = importlib.import_module(f"{prepare.__name__}.{info.name}")
        builder = getattr(module, "BUILDER", None)
        if isinstance(builder, CorpusBuilder):
            found.append(builder)
    return sorted(found, key=lambda b: b.name)
