"""Quality benchmark: prepare the data, train within the config's time budget, score test.

    .venv/bin/python bench/quality.py --config configs/bible-en-fr.yaml        # <= 45 min
    .venv/bin/python bench/quality.py --config configs/manpages-summarize.yaml # <= 12 min

Runs exactly what a user runs (`s2s data prepare`, `s2s train`, `s2s evaluate`) and
writes bench/results/quality-<name>.json with the test scores and the training summary.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import print_table, write_results  # noqa: E402
from s2s.config import load_config  # noqa: E402

PREPARE = {"bible-en-fr": ["bible", "--src", "en", "--tgt", "fr"], "manpages-summarize": ["manpages"]}


def s2s(*args: str) -> str:
    cmd = [sys.executable, "-m", "s2s.cli", *args]
    print("$ s2s " + " ".join(args), flush=True)
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", help="run directory (default runs/<name>)")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--skip-train", action="store_true", help="score an existing run")
    args = parser.parse_args()
    cfg = load_config(args.config)
    out = args.out or f"runs/{cfg.name}"
    data_dir = Path(cfg.data.train).parent
    if not Path(cfg.data.train).exists() and cfg.name in PREPARE:
        s2s("data", "prepare", *PREPARE[cfg.name], "--out", str(data_dir))
    started = time.time()
    if not args.skip_train:
        print(s2s("train", "--config", args.config, "--out", out).strip())
    train_minutes = (time.time() - started) / 60
    history = json.loads((Path(out) / "history.json").read_text())
    scores = json.loads(s2s("evaluate", "--model", f"{out}/best", "--test", cfg.data.test,
                            "--beam", str(args.beam), "--json"))
    print_table(["metric", "test"], [[k, v] for k, v in scores.items()])
    write_results(f"quality-{cfg.name}", {
        "config": args.config, "train_minutes": train_minutes, "test": scores, "beam": args.beam,
        "steps": history[-1]["step"], "epochs_done": history[-1]["epoch"],
        "best_dev": max(h[next(k for k in h if k.startswith("dev_"))] for h in history),
        "mean_tokens_per_s": sum(h["tokens_per_s"] for h in history) / len(history)})


if __name__ == "__main__":
    main()
