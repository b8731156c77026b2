"""s2s beside Joey NMT 2.3 and OpenNMT-py 3.5, side by side: same data, vocabulary, model
size, budget and threads; training tokens/s, BLEU/chrF, decoding sentences/s, peak memory.

    .venv/bin/python bench/peers.py                  # 45 minutes of training per tool
    .venv/bin/python bench/peers.py --smoke          # a few minutes end to end
    .venv/bin/python bench/peers.py --minutes 15 --tools s2s,s2s-feeding,joeynmt,opennmt

The peers are installed from PyPI into .peers/<tool>-venv on first use. What each tool gets
and why: bench/peers/ (settings.py, joey.py, opennmt.py, s2s_tool.py, runners/budget.py).
Results: bench/results/peers.json (smoke: peers-smoke.json) and a printed table.
"""
from __future__ import annotations

import sys
from pathlib import Path

# bench/peers/ (the package) and this script share a name: the package is what
# `bench.peers` imports; this file is only ever run.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from bench.peers.harness import main  # noqa: E402

if __name__ == "__main__":
    main()
