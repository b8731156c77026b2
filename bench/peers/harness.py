"""bench/peers.py: s2s beside Joey NMT 2.3 and OpenNMT-py 3.5 in one invocation.

    .venv/bin/python bench/peers.py                  # 45 minutes of training per tool
    .venv/bin/python bench/peers.py --smoke          # 1.5 minutes per tool, 64 test verses
    .venv/bin/python bench/peers.py --minutes 15 --tools s2s,joeynmt

Every tool trains on the prepared Bible en->fr split (data/bible-en-fr: train = 62 books,
dev = Acts, test = Daniel, Romans, 1 Corinthians), segmented by one shared SentencePiece
BPE model (8,000), with the same model size, the same wall-clock budget and the same number
of threads, one tool after another on the same machine; then each decodes the same test
verses with beam 5 in batches of 64. Columns: training target tokens/s (target tokens
trained on / training seconds, the same definition for every tool: runners/budget.py), BLEU
and chrF (sacreBLEU on detokenized output against the raw references, all test verses or
the first --test-sentences), decoding sentences/s on the first --decode-sentences test
verses (model loading off the clock, a warm-up first), and the training process's peak
RSS. s2s's figures are also given as multiples of each peer's, measured in the same run.

The peers are installed from PyPI into .peers/<tool>-venv on first use (install.py); the
data files, configs, logs, checkpoints and outputs go to .peers/work (smoke:
.peers/work-smoke). Results: bench/results/peers.json (smoke: peers-smoke.json).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import yaml

from bench.common import print_table, write_results
from bench.peers import data as shared
from bench.peers import install, joey, measure, opennmt, s2s_tool
from bench.peers.settings import FULL, SMOKE, Settings

REPO = Path(__file__).resolve().parents[2]
RUNNERS = Path(__file__).resolve().parent / "runners"
PEERS = {"joeynmt": joey.SPEC, "opennmt": opennmt.SPEC}
TOOLS = ("s2s", "s2s-feeding", "joeynmt", "opennmt")
DEFAULT_TOOLS = "s2s,joeynmt,opennmt"
LABELS = {"s2s": "s2s", "s2s-feeding": "s2s (input feeding)", "joeynmt": "Joey NMT 2.3.0",
          "opennmt": "OpenNMT-py 3.5.1"}
VERSION_PACKAGES = ("torch", "joeynmt", "opennmt-py", "sentencepiece", "protobuf", "numpy",
                    "sacrebleu", "ctranslate2", "pyonmttok")


def log(msg: str) -> None:
    print(f"[peers {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------------------ data

class Files:
    """The shared inputs of one run, under WORK/data."""

    def __init__(self, work: Path):
        self.dir = work / "data"
        self.sp = self.dir / "sp.model"
        self.vocab = self.dir / "vocab.txt"
        self.speed_src_raw = self.dir / "speed.src.txt"
        self.speed_src_pieces = self.dir / "speed.src.pieces"
        self.test_src_raw = self.dir / "test.src.txt"
        self.test_src_pieces = self.dir / "test.src.pieces"
        self.test_refs = self.dir / "test.ref.txt"
        self.meta = self.dir / "meta.json"


def prepare_data(s: Settings, data_dir: Path, work: Path, langs: tuple[str, str]) -> tuple[Files, dict]:
    from s2s.config import load_config
    from s2s.corpus import read_corpus
    from s2s.vocabulary import learn_vocabularies

    if not (data_dir / "train.parquet").exists():
        log(f"preparing {data_dir}")
        subprocess.run([sys.executable, "-m", "s2s.cli", "data", "prepare", "bible", "--src",
                        langs[0], "--tgt", langs[1], "--out", str(data_dir)], check=True)
    files = Files(work)
    files.dir.mkdir(parents=True, exist_ok=True)
    tables = {split: read_corpus(str(data_dir / f"{split}.parquet"))
              for split in ("train", "dev", "test")}
    key = shared.fingerprint(s.vocab_size, s.max_len, s.seed, s.dev_sentences, s.test_sentences,
                             s.decode_sentences, shared.spm.__version__,
                             [(p.name, p.stat().st_size, p.stat().st_mtime)
                              for p in sorted(data_dir.glob("*.parquet"))])
    if files.meta.exists() and json.loads(files.meta.read_text()).get("key") == key:
        return files, json.loads(files.meta.read_text())
    log("learning the shared SentencePiece model and writing the peers' files")
    cfg_path = files.dir / "s2s-tokenizer.yaml"
    cfg_path.write_text(yaml.safe_dump(s2s_tool.config(s, data_dir), sort_keys=False))
    cfg = load_config(cfg_path)
    train = tables["train"]
    vocab, _ = learn_vocabularies(train.column("src").to_pylist(), train.column("tgt").to_pylist(),
                                  cfg.data.tokenizer, cfg.training.seed)
    sp = shared.SharedVocab(vocab.model_proto)
    sp.save(files.sp)
    n_pieces = shared.write_vocab(sp, files.vocab)

    def col(split: str, name: str, n: int = 0) -> list[str]:
        values = tables[split].column(name).to_pylist()
        return values[:n] if n else values

    shared.write_parallel(sp, col("train", "src"), col("train", "tgt"), files.dir / "train",
                          langs, s.max_len)
    shared.write_parallel(sp, col("dev", "src", s.dev_sentences),
                          col("dev", "tgt", s.dev_sentences), files.dir / "dev", langs)
    speed = col("test", "src", s.decode_sentences)
    test_src, test_ref = col("test", "src", s.test_sentences), col("test", "tgt", s.test_sentences)
    for raw, pieces, texts in ((files.speed_src_raw, files.speed_src_pieces, speed),
                               (files.test_src_raw, files.test_src_pieces, test_src)):
        shared.write_lines(raw, texts)
        shared.write_lines(pieces, sp.segment(texts))
    shared.write_lines(files.test_refs, test_ref)
    tgt_tokens = sum(len(p.split()) + 1 for p in shared.read_lines(files.dir / f"train.{langs[1]}"))
    meta = {"key": key, "sp_sha256": sp.digest(), "vocab_pieces": n_pieces,
            "vocab_entries": len(sp), "train_pairs": len(train),
            "train_target_tokens_per_epoch": tgt_tokens,
            "dev_pairs": len(col("dev", "src", s.dev_sentences)),
            "test_pairs": len(test_src), "speed_sentences": len(speed)}
    files.meta.write_text(json.dumps(meta, indent=2))
    return files, meta


# ------------------------------------------------------------------------------ the tools

def venv_versions(python: Path) -> dict[str, str]:
    code = ("import importlib.metadata as m, json, torch\n"
            f"names = {list(VERSION_PACKAGES)!r}\n"
            "out = {}\n"
            "for n in names:\n"
            "    try: out[n] = m.version(n)\n"
            "    except m.PackageNotFoundError: pass\n"
            "out['torch_path'] = torch.__file__\n"
            "print(json.dumps(out))")
    done = subprocess.run([str(python), "-c", code], stdout=subprocess.PIPE, text=True,
                          env=measure.thread_env(1))
    return json.loads(done.stdout) if done.returncode == 0 else {}


def run_step(name: str, cmd: list[str], work: Path, env: dict, timeout_s: float,
             cwd: Path | None = None) -> measure.Run:
    log(f"{name}: {' '.join(str(c) for c in cmd)}")
    load_before = os.getloadavg()[0]
    run = measure.run(cmd, work / f"{name}.log", env, cwd=cwd, timeout_s=timeout_s)
    log(f"{name}: exit {run.returncode} in {run.wall_s:.0f} s, peak RSS {run.peak_mb:.0f} MB "
        f"(load {load_before:.1f} -> {os.getloadavg()[0]:.1f})")
    if run.returncode != 0:
        tail = run.log.read_text(errors="replace").strip().splitlines()[-15:]
        raise StepFailed(f"{name} exited {run.returncode}"
                         f"{' (timed out)' if run.timed_out else ''}: " + " | ".join(tail[-3:]),
                         "\n".join(tail))
    return run


class StepFailed(RuntimeError):
    def __init__(self, message: str, tail: str):
        super().__init__(message)
        self.tail = tail


def run_info(run: measure.Run) -> dict[str, Any]:
    return {"wall_s": run.wall_s, "peak_rss_mb": run.peak_mb, "maxrss_mb": run.maxrss_mb,
            "tree_peak_mb": run.tree_peak_mb, "max_load": run.max_load, "log": str(run.log)}


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def train_timeout(s: Settings) -> float:
    return s.minutes * 60 * 1.25 + 900         # start-up, the last dev check, slow machines


DECODE_TIMEOUT_S = 3600.0


def train_with_runner(name: str, python: Path, runner: str, cfg_path: Path, s: Settings,
                      out: Path) -> tuple[measure.Run, dict[str, Any]]:
    """A peer's training through its runner (bench/peers/runners/): the run and what it reported."""
    result = out / "train-result.json"
    train = run_step(name, [str(python), str(RUNNERS / runner), "train", "--config", str(cfg_path),
                            "--minutes", str(s.minutes), "--threads", str(s.threads), "--result", str(result)],
                     out, measure.thread_env(s.threads), train_timeout(s), cwd=out)
    return train, read_json(result)


def s2s_row(tool: str, s: Settings, files: Files, data_dir: Path, work: Path) -> dict[str, Any]:
    from s2s.checkpoint import load_trainer_state
    from s2s.config import load_config

    out = work / tool
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = out / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(
        s2s_tool.config(s, data_dir, name=f"peers-{tool}", input_feeding=tool == "s2s-feeding"),
        sort_keys=False))
    load_config(cfg_path)                       # a config error costs nothing yet
    run_dir = out / "run"
    if run_dir.exists():                        # s2s would resume OUT/last: start afresh
        shutil.rmtree(run_dir)
    env = measure.thread_env(s.threads)
    train = run_step(f"{tool}-train", [sys.executable, "-m", "s2s.cli", "train", "--config",
                                       str(cfg_path), "--out", str(run_dir)],
                     out, env, train_timeout(s), cwd=REPO)
    summary = s2s_tool.parse_train_output(train.log.read_text(errors="replace"))
    progress = (load_trainer_state(run_dir / "last") or {}).get("progress", {})
    model = run_dir / "best"
    same_vocab = (model / "vocab.spm").read_bytes() == files.sp.read_bytes()
    tokens, train_s = int(progress.get("tokens", 0)), float(progress.get("train_seconds", 0.0))
    row = {"train": {**run_info(train), "steps": progress.get("step", summary.get("steps")),
                     "tokens": tokens, "train_s": train_s,
                     "tokens_per_s": tokens / train_s if train_s else summary.get("tokens_per_s"),
                     "printed_tokens_per_s": summary.get("tokens_per_s"),
                     "best_dev": summary.get("best_dev"),
                     "history": read_json(run_dir / "history.json"),
                     "identical_segmentation": same_vocab}}
    if not same_vocab:
        row["note"] = "s2s learned a SentencePiece model different from the shared one"
    decode = lambda name, src, hyp: run_step(  # noqa: E731
        name, [sys.executable, str(RUNNERS / "s2s_runner.py"), "decode", "--model", str(model),
               "--input", str(src), "--output", str(hyp), "--warmup", str(s.warmup_sentences),
               "--threads", str(s.threads), "--result", str(out / f"{name}.json")],
        out, env, DECODE_TIMEOUT_S)
    row.update(decode_both(s, files, out, tool, decode, raw_input=True))
    return row


def joey_row(s: Settings, files: Files, work: Path, langs) -> dict[str, Any]:
    python = install.ensure(joey.SPEC, log=log)
    out = work / "joeynmt"
    out.mkdir(parents=True, exist_ok=True)
    model_dir = out / "model"
    cfg_path = out / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(joey.config(s, files.dir, model_dir, langs, files.vocab),
                                       sort_keys=False))
    env = measure.thread_env(s.threads)
    train, runner = train_with_runner("joeynmt-train", python, "joey_runner.py", cfg_path, s, out)
    logged = joey.parse_log((model_dir / "train.log").read_text(errors="replace"))
    row = {"train": {**run_info(train), **runner, "own_log": logged}}
    decode = lambda name, src, hyp: run_step(  # noqa: E731
        name, [str(python), str(RUNNERS / "joey_runner.py"), "decode", "--config", str(cfg_path),
               "--input", str(src), "--output", str(hyp), "--warmup", str(s.warmup_sentences),
               "--threads", str(s.threads), "--result", str(out / f"{name}.json")],
        out, env, DECODE_TIMEOUT_S, cwd=out)
    row.update(decode_both(s, files, out, "joeynmt", decode, raw_input=False))
    return row


def opennmt_row(s: Settings, files: Files, work: Path, meta: dict, langs) -> dict[str, Any]:
    python = install.ensure(opennmt.SPEC, log=log)
    out = work / "opennmt"
    model_dir = out / "model"
    if model_dir.exists():
        shutil.rmtree(model_dir)
    model_dir.mkdir(parents=True)
    cfg_path = out / "train.yaml"
    cfg_path.write_text(yaml.safe_dump(opennmt.train_config(
        s, files.dir, model_dir, langs, files.vocab, meta["train_pairs"]), sort_keys=False))
    env = measure.thread_env(s.threads)
    train, runner = train_with_runner("opennmt-train", python, "onmt_runner.py", cfg_path, s, out)
    logged = opennmt.parse_log(train.log.read_text(errors="replace"))   # its steps go to stdout
    checkpoint = opennmt.last_checkpoint(model_dir)
    row = {"train": {**run_info(train), **runner, "own_log": logged,
                     "checkpoint": str(checkpoint)}}

    def decode(name: str, src: Path, hyp: Path) -> measure.Run:
        tr_path = out / f"{name}.yaml"
        tr_path.write_text(yaml.safe_dump(opennmt.translate_config(
            s, checkpoint, src, out / f"{name}.raw-output", out / f"{name}.translate.log"),
            sort_keys=False))
        return run_step(name, [str(python), str(RUNNERS / "onmt_runner.py"), "decode",
                               "--config", str(tr_path), "--output", str(hyp), "--warmup",
                               str(s.warmup_sentences), "--threads", str(s.threads),
                               "--result", str(out / f"{name}.json")],
                        out, env, DECODE_TIMEOUT_S, cwd=out)

    row.update(decode_both(s, files, out, "opennmt", decode, raw_input=False))
    return row


def decode_both(s: Settings, files: Files, out: Path, tool: str, decode, raw_input: bool) -> dict:
    """The timed decode of the speed verses and the scored decode of the test verses (one
    decode when they are the same verses, as in smoke mode)."""
    from s2s.scoring import bleu, chrf

    sp = shared.SharedVocab.load(files.sp)
    speed_src = files.speed_src_raw if raw_input else files.speed_src_pieces
    test_src = files.test_src_raw if raw_input else files.test_src_pieces
    same = shared.read_lines(files.speed_src_raw) == shared.read_lines(files.test_src_raw)
    speed_hyp = out / "speed.hyp"
    speed = decode(f"{tool}-decode-speed", speed_src, speed_hyp)
    speed_result = read_json(out / f"{tool}-decode-speed.json")
    speed_out = shared.read_lines(speed_hyp)
    # Output length: an undertrained model's degenerate outputs run to the length cap and
    # make its decode slow; this says how much each tool generated per sentence.
    pieces = [len(line.split()) for line in speed_out] if not raw_input else \
        [len(p) for p in sp.sp.encode(speed_out, out_type=str)]
    speed_result["output_pieces_per_sentence"] = sum(pieces) / max(len(pieces), 1)
    if same:
        test_hyp, test_run, test_result = speed_hyp, speed, speed_result
    else:
        test_hyp = out / "test.hyp"
        test_run = decode(f"{tool}-decode-test", test_src, test_hyp)
        test_result = read_json(out / f"{tool}-decode-test.json")
    hyps = shared.read_lines(test_hyp)
    if not raw_input:
        hyps = sp.detokenize(hyps)
    shared.write_lines(out / "test.detok.txt", hyps)
    refs = shared.read_lines(files.test_refs)
    return {"decode": {**run_info(speed), **speed_result},
            "test": {**run_info(test_run), **test_result, "bleu": bleu(hyps, refs),
                     "chrf": chrf(hyps, refs), "sentences": len(refs),
                     "output": str(out / "test.detok.txt")}}


# ------------------------------------------------------------------------------ report

def table(results: dict[str, dict], meta: dict,
          threads: int = 0) -> tuple[list[str], list[list[Any]], list[str]]:
    """The printed rows; `threads`: a row whose 1-minute load average went past threads + 1
    while it trained or decoded gets a note (its figures are not its own alone)."""
    base = results.get("s2s", {})
    headers = ["tool", "steps", "epochs", "train tok/s", "BLEU", "chrF", "decode sent/s",
               "out len", "peak RSS MB", "max load", "s2s x tok/s", "s2s x sent/s", "note"]
    rows, lines = [], []
    per_epoch = meta.get("train_target_tokens_per_epoch") or 0
    for tool, r in results.items():
        if "error" in r:
            rows.append([LABELS[tool], *[""] * (len(headers) - 2), r["error"][:160]])
            continue
        t, d, q = r["train"], r["decode"], r["test"]
        tokps = t["tokens_per_s"]
        epochs = t["tokens"] / per_epoch if t.get("tokens") and per_epoch else ""
        x_tok = x_dec = ""
        if tool != "s2s" and base and "error" not in base:
            x_tok = f"{base['train']['tokens_per_s'] / tokps:.2f}x"
            x_dec = f"{base['decode']['sentences_per_s'] / d['sentences_per_s']:.2f}x"
            lines.append(f"s2s / {LABELS[tool]}: training tokens/s {x_tok}, decoding "
                         f"sentences/s {x_dec}, BLEU {base['test']['bleu'] - q['bleu']:+.2f}")
        load = max(t.get("max_load", 0.0), d.get("max_load", 0.0))
        note = r.get("note", "")
        if threads and load > threads + 1:
            note = (note + "; " if note else "") + "shared machine: other work ran meanwhile"
        rows.append([LABELS[tool], t.get("steps", ""), epochs,
                     tokps, q["bleu"], q["chrf"], d["sentences_per_s"],
                     d.get("output_pieces_per_sentence", ""), t["peak_rss_mb"], load,
                     x_tok, x_dec, note])
    return headers, rows, lines


# ------------------------------------------------------------------------------ main

def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="1.5-minute budget, 64 test verses")
    parser.add_argument("--minutes", type=float, help="training budget per tool (default 45)")
    parser.add_argument("--threads", type=int, help="threads per tool (default 2)")
    parser.add_argument("--tools", default=DEFAULT_TOOLS,
                        help=f"comma-separated, in order, from {', '.join(TOOLS)}")
    parser.add_argument("--test-sentences", type=int, help="test verses scored (0: all)")
    parser.add_argument("--decode-sentences", type=int, help="test verses timed (default 256)")
    parser.add_argument("--data", default="data/bible-en-fr")
    parser.add_argument("--work", help="work folder (default .peers/work, smoke .peers/work-smoke)")
    parser.add_argument("--results", help="results name (default peers, smoke peers-smoke)")
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    s = SMOKE if args.smoke else FULL
    changes = {k: v for k, v in {"minutes": args.minutes, "threads": args.threads,
                                 "test_sentences": args.test_sentences,
                                 "decode_sentences": args.decode_sentences}.items()
               if v is not None}
    return s.replace(**changes)


def main(argv=None) -> None:
    args = parse_args(argv)
    s = settings_from(args)
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = [t for t in tools if t not in TOOLS]
    if unknown:
        raise SystemExit(f"unknown tools {unknown}; choose from {', '.join(TOOLS)}")
    work = (REPO / (args.work or (".peers/work-smoke" if args.smoke else ".peers/work"))).resolve()
    data_dir = (REPO / args.data).resolve()
    started = time.time()
    meta_json = json.loads((data_dir / "meta.json").read_text()) if (data_dir / "meta.json").exists() else {}
    langs = (meta_json.get("src_lang", "en"), meta_json.get("tgt_lang", "fr"))
    log(f"settings: {s}")
    files, meta = prepare_data(s, data_dir, work, langs)
    results: dict[str, dict] = {}
    installs: dict[str, Any] = {}
    for tool in tools:
        load = os.getloadavg()
        log(f"=== {tool} (load average {load[0]:.1f})")
        try:
            if tool in PEERS:
                spec = PEERS[tool]
                installs[tool] = {"spec": spec.key(),
                                  "versions": venv_versions(install.ensure(spec, log=log))}
            if tool.startswith("s2s"):
                row = s2s_row(tool, s, files, data_dir, work)
            elif tool == "joeynmt":
                row = joey_row(s, files, work, langs)
            else:
                row = opennmt_row(s, files, work, meta, langs)
        except StepFailed as err:
            row = {"error": str(err), "log_tail": err.tail}
        except Exception as err:  # noqa: BLE001 - the row says why, the others still run
            row = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}
        row["load_average_before"] = load
        row["load_average_after"] = os.getloadavg()
        results[tool] = row
        if "error" in row:
            log(f"{tool} failed: {row['error']}")
    headers, rows, lines = table(results, meta, s.threads)
    wall = time.time() - started
    print()
    print_table(headers, rows)
    for line in lines:
        print(line)
    name = args.results or ("peers-smoke" if args.smoke else "peers")
    path = write_results(name, {
        "args": vars(args), "settings": s.__dict__, "data": meta, "tools": tools,
        "installs": installs, "host_versions": venv_versions(Path(sys.executable)),
        "results": results, "wall_s": wall, "table": {"headers": headers, "rows": rows},
        "ratios": lines})
    print(f"wall time {wall / 60:.1f} min; results: {path}")
