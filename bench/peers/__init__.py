"""Adapters of bench/peers.py: s2s beside Joey NMT 2.3 and OpenNMT-py 3.5, side by side.

    settings.py  the one set of sizes, training and decoding settings every tool gets
    data.py      the shared SentencePiece vocabulary, the pre-tokenized files, detokenizing
    s2s_tool.py  joey.py  opennmt.py   each tool's config writer, install spec, log parser
    install.py   each peer in its own virtualenv under .peers/ (idempotent; pins and patches)
    measure.py   a subprocess run with its wall time and peak RSS (runners/peak.py launches it)
    runners/     scripts run by each tool's own Python: the training budget, the timed decode
    harness.py   the run itself (bench/peers.py calls its main)

No peer code lives here: the peers are installed from PyPI by install.py.
"""
