"""Quality ablation: baseline, + each technique, + all, each row the same budget on the same split.

    .venv/bin/python bench/quality.py --config configs/manpages-summarize.yaml --minutes 12
    .venv/bin/python bench/quality.py --config configs/bible-en-fr.yaml --minutes 15
    .venv/bin/python bench/quality.py --config configs/bible-en-fr.yaml --rows all --minutes 45
    .venv/bin/python bench/quality.py --smoke          # every row on a toy task, ~2 minutes
    .venv/bin/python bench/quality.py --config ... --rows baseline,budget --skip-train baseline
                                                       # a new row against a baseline run before

The baseline is the config with every technique off (copy attention, coverage, checkpoint
averaging, subword regularization, the budget LR schedule); each "+X" row turns one on, "+all"
turns all on. A technique the config already switches on keeps the config's setting (e.g. its
sampling_alpha), otherwise it gets the default below. Every row runs exactly what a user
runs (`s2s train` with the row's YAML, then `s2s evaluate` on the config's test split; the
"+average"/"+all" rows score OUT/averaged, the others OUT/best) and the table shows the
test scores and their delta to the baseline. Results: bench/results/quality-<name>.json.
"""
from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.common import print_table, write_results  # noqa: E402
from s2s.config import ConfigError, load_config  # noqa: E402

PREPARE = {"bible-en-fr": ["bible", "--src", "en", "--tgt", "fr"], "manpages-summarize": ["manpages"]}

# (section path, key, value when switched on and the config leaves it off)
TECHNIQUES = {
    "copy": (("model",), "copy_attention", True),
    "coverage": (("model",), "coverage", True),
    "average": (("training",), "average_last", 5),
    "subword": (("data", "tokenizer"), "sampling_alpha", 0.1),
    "budget": (("training",), "lr_schedule", "budget"),
}
OFF = {"copy": False, "coverage": False, "average": 0, "subword": 0.0, "budget": "plateau"}
ROWS = ["baseline", *TECHNIQUES, "all"]

# Smoke mode: a toy copy task with a subword tokenizer (so sampling has choices), a tiny
# model and seconds of training per row; it proves the ablation runs, not what it finds.
SMOKE = {
    "name": "smoke",
    "data": {"task": "translation", "max_src_len": 24, "max_tgt_len": 24,
             "tokenizer": {"type": "unigram", "vocab_size": 40, "byte_fallback": False}},
    "model": {"emb_size": 32, "enc_hidden": 32, "dec_hidden": 64, "attention": "luong_general",
              "input_feeding": False, "dropout": 0.0},
    "training": {"epochs": 50, "max_minutes": 0.1, "batch_tokens": 1500, "eval_every": 25,
                 "dev_sentences": 40, "early_stopping": 0, "threads": 1, "warmup_steps": 20},
    "testing": {"beam": 2, "batch_size": 64},
}


def s2s(*args: str) -> str:
    cmd = [sys.executable, "-m", "s2s.cli", *args]
    print("$ s2s " + " ".join(args), flush=True)
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        out[key] = merge(out.get(key) or {}, value) if isinstance(value, dict) else value
    return out


def _section(raw: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    for name in path:
        raw = raw.setdefault(name, {})
    return raw


def row_config(raw: dict[str, Any], row: str, minutes: float | None) -> dict[str, Any]:
    """The row's config: every technique off, then the row's on (at the config's setting
    if it has one), with the shared time budget."""
    out = copy.deepcopy(raw)
    for name, (path, key, default) in TECHNIQUES.items():
        section = _section(out, path)
        configured = section.get(key)
        on = row in (name, "all")
        section[key] = (configured if configured not in (None, OFF[name]) else default) if on \
            else OFF[name]
    if minutes is not None:
        _section(out, ("training",))["max_minutes"] = minutes
    return out


def run_row(raw: dict[str, Any], row: str, out_dir: Path, args) -> dict[str, Any]:
    row_dir = out_dir / row
    row_dir.mkdir(parents=True, exist_ok=True)
    config_path = row_dir / "config.yaml"
    reused = row in args.skip_train and config_path.exists()
    if not reused:  # a run scored again keeps the config it was trained with
        config_path.write_text(yaml.safe_dump(row_config(raw, row, args.minutes), sort_keys=False))
    try:
        cfg = load_config(config_path)                 # validate before spending the budget
    except ConfigError as err:                         # e.g. sampling with a word vocabulary
        print(f"row {row} skipped: {err}", flush=True)
        return {"row": row, "config": str(config_path), "skipped": str(err)}
    run_dir = row_dir / "run"
    if row in args.skip_train and not (run_dir / "history.json").exists():
        sys.exit(f"--skip-train {row}: {run_dir} holds no finished run to score")
    if row not in args.skip_train:
        print(s2s("train", "--config", str(config_path), "--out", str(run_dir)).strip())
    history = json.loads((run_dir / "history.json").read_text())
    model = run_dir / ("averaged" if cfg.training.average_last else "best")
    evaluate = ["evaluate", "--model", str(model), "--test", cfg.data.test, "--beam",
                str(args.beam), "--json"] + (["--limit", str(args.limit)] if args.limit else [])
    scores = json.loads(s2s(*evaluate))
    dev_key = next(k for k in history[-1] if k.startswith("dev_"))
    return {"row": row, "config": str(config_path), "model": str(model),
            "train_minutes": history[-1]["wall_s"] / 60, "steps": history[-1]["step"],
            "epochs_done": history[-1]["epoch"], "best_dev": max(h[dev_key] for h in history),
            "test": scores}


def metric_names(task: str) -> list[str]:
    return ["rouge1", "rouge2", "rougeL"] if task == "summarization" else ["bleu", "chrf"]


def table(results: list[dict[str, Any]], task: str) -> tuple[list[str], list[list[Any]]]:
    names = metric_names(task)
    base = next((r for r in results if r["row"] == "baseline" and "skipped" not in r), None)
    headers = ["row", "minutes", "steps", *names, *(f"d_{n}" for n in names)]
    rows = []
    for r in (r for r in results if "skipped" not in r):
        deltas = [r["test"][n] - base["test"][n] if base else float("nan") for n in names]
        label = r["row"] if r["row"] == "baseline" else f"+{r['row']}"
        rows.append([label, r["train_minutes"], r["steps"], *(r["test"][n] for n in names), *deltas])
    return headers, rows


def smoke_config(out_dir: Path) -> Path:
    data_dir = out_dir / "data"
    if not (data_dir / "train.parquet").exists():
        s2s("data", "prepare", "toy", "--transform", "copy", "--train", "1500", "--out", str(data_dir))
    raw = merge(yaml.safe_load((REPO / "configs" / "toy-reverse.yaml").read_text()), SMOKE)
    raw["data"].update(train=str(data_dir / "train.parquet"), dev=str(data_dir / "dev.parquet"),
                       test=str(data_dir / "test.parquet"))
    path = out_dir / "smoke.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="experiment YAML (not needed with --smoke)")
    parser.add_argument("--out", help="directory for the rows' runs (default runs/quality-<name>)")
    parser.add_argument("--minutes", type=float, help="training budget per row (default: the "
                                                      "config's training.max_minutes)")
    parser.add_argument("--rows", default=",".join(ROWS),
                        help=f"comma-separated subset of {','.join(ROWS)}")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--limit", type=int, default=0, help="score only the first N test pairs")
    parser.add_argument("--skip-train", nargs="?", const=",".join(ROWS), default="",
                        help="score the existing runs of these rows (comma-separated; alone: every row)")
    parser.add_argument("--smoke", action="store_true",
                        help="toy task, tiny model, ~6 s of training per row: checks the harness")
    args = parser.parse_args()
    args.rows = args.rows.split(",")
    args.skip_train = set(filter(None, args.skip_train.split(",")))
    unknown = sorted((set(args.rows) | args.skip_train) - set(ROWS))
    if unknown or not (args.config or args.smoke):
        parser.error(f"unknown rows {unknown}" if unknown else "--config is required")
    return args


def main() -> None:
    args = parse_args()
    if args.smoke:
        out_dir = Path(args.out or "runs/quality-smoke")
        out_dir.mkdir(parents=True, exist_ok=True)
        args.config, args.beam, args.limit = str(smoke_config(out_dir)), 2, args.limit or 100
    cfg = load_config(args.config)
    out_dir = Path(args.out or f"runs/quality-{cfg.name}")
    if not Path(cfg.data.train).exists() and cfg.name in PREPARE:
        s2s("data", "prepare", *PREPARE[cfg.name], "--out", str(Path(cfg.data.train).parent))
    raw = yaml.safe_load(Path(args.config).read_text())
    results = [run_row(raw, row, out_dir, args) for row in args.rows]
    headers, rows = table(results, cfg.data.task)
    print_table(headers, rows)
    write_results(f"quality-{cfg.name}", {
        "config": args.config, "minutes_per_row": args.minutes or cfg.training.max_minutes,
        "beam": args.beam, "test_limit": args.limit, "table": [dict(zip(headers, r)) for r in rows],
        "rows": results})


if __name__ == "__main__":
    main()
