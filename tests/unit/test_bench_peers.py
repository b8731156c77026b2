"""bench/peers/: the converters, config writers, parsers and plumbing of the side-by-side
benchmark. Fast; no peer is installed (the peers' own code runs only in bench/peers.py)."""
from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import pytest
import sentencepiece as spm
import yaml

from bench.peers import data, harness, install, joey, measure, opennmt, s2s_tool
from bench.peers.settings import FULL, SMOKE
from s2s.config import load_config

RUNNERS = Path(__file__).resolve().parents[2] / "bench" / "peers" / "runners"

TEXTS = ["In the beginning God created the heavens and the earth.",
         "The earth was formless and empty.", "Darkness was on the surface of the deep.",
         "God said, Let there be light, and there was light.",
         "Au commencement, Dieu créa les cieux et la terre.",
         "La terre était informe et vide.", "Dieu dit: Que la lumière soit!"] * 5


@pytest.fixture(scope="module")
def vocab() -> data.SharedVocab:
    import io
    proto = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(TEXTS), model_writer=proto,
                                   model_type="bpe", vocab_size=90, hard_vocab_limit=False,
                                   pad_id=0, unk_id=1, bos_id=2, eos_id=3, minloglevel=2)
    return data.SharedVocab(proto.getvalue())


def test_segment_and_detokenize_round_trip(vocab):
    lines = vocab.segment(TEXTS[:7])
    assert all(" " not in piece for line in lines for piece in line.split(" "))
    assert vocab.detokenize(lines) == TEXTS[:7]


def test_segment_cuts_like_s2s_truncate(vocab):
    full = vocab.segment([TEXTS[0]])[0].split()
    assert vocab.segment([TEXTS[0]], max_len=5)[0].split() == full[:4]
    assert vocab.segment([TEXTS[0]], max_len=0)[0].split() == full


def test_detokenize_drops_the_peers_specials_and_keeps_unk(vocab):
    line = " ".join(["<s>", *vocab.segment(["God said"])[0].split(), "<blank>", "</s>", "<pad>"])
    assert vocab.detokenize([line]) == ["God said"]
    assert "\u2047" in vocab.detokenize(["\u2581God <unk>"])[0]   # ' ⁇ ', as s2s writes unk


def test_vocab_file_lists_every_ordinary_piece_once(vocab, tmp_path):
    n = data.write_vocab(vocab, tmp_path / "vocab.txt")
    lines = data.read_lines(tmp_path / "vocab.txt")
    assert n == len(lines) == len(vocab) - 4 == len(set(lines))
    assert not set(lines) & set(data.SPECIAL_PIECES)


@pytest.mark.parametrize("piece", ["a b", "a\tb", "a\u2028b", "a\x85b", "", "a\nb"])
def test_pieces_that_would_split_are_refused(piece):
    with pytest.raises(ValueError):
        data.check_pieces(["ok", piece])


def test_lines_split_only_on_newline(tmp_path):
    data.write_lines(tmp_path / "f", ["a\u2028b", "c\x85", "two\nlines"])
    assert data.read_lines(tmp_path / "f") == ["a\u2028b", "c\x85", "two lines"]
    data.write_lines(tmp_path / "empty", [])
    assert data.read_lines(tmp_path / "empty") == []


def test_parallel_files_are_aligned(vocab, tmp_path):
    data.write_parallel(vocab, TEXTS[:4], TEXTS[4:8], tmp_path / "train", ("en", "fr"), 100)
    src, tgt = data.read_lines(tmp_path / "train.en"), data.read_lines(tmp_path / "train.fr")
    assert len(src) == len(tgt) == 4
    assert vocab.detokenize(tgt) == TEXTS[4:8]


def test_fingerprint_changes_with_its_parts():
    assert data.fingerprint(1, "a") == data.fingerprint(1, "a") != data.fingerprint(2, "a")


# ------------------------------------------------------------------------------ configs

@pytest.mark.parametrize("s", [FULL, SMOKE])
def test_joey_config_matches_the_shared_settings(s, tmp_path):
    cfg = joey.config(s, tmp_path / "data", tmp_path / "model", ("en", "fr"), tmp_path / "v.txt")
    yaml.safe_load(yaml.safe_dump(cfg))               # plain YAML
    enc, dec = cfg["model"]["encoder"], cfg["model"]["decoder"]
    assert (enc["type"], enc["rnn_type"], enc["hidden_size"], enc["bidirectional"]) == \
        ("recurrent", "lstm", 256, True)
    assert (dec["type"], dec["hidden_size"], dec["attention"], dec["input_feeding"],
            dec["init_hidden"]) == ("recurrent", 512, "luong", True, "bridge")
    assert enc["embeddings"]["embedding_dim"] == dec["embeddings"]["embedding_dim"] == 256
    assert cfg["model"]["tied_embeddings"] is True
    t = cfg["training"]
    assert (t["batch_size"], t["batch_type"], t["learning_rate"]) == (s.batch_tokens, "token", s.lr)
    assert t["validation_freq"] % t["logging_freq"] == 0        # Joey refuses otherwise
    assert cfg["data"]["src"]["voc_file"] == cfg["data"]["trg"]["voc_file"]
    assert cfg["testing"]["beam_size"] == 5 and cfg["testing"]["batch_size"] == 64


def test_joey_specials_match_sentencepiece_pieces():
    names = {joey.SPECIALS[k] for k in ("unk_token", "pad_token", "bos_token", "eos_token")}
    assert names == set(data.SPECIAL_PIECES)


@pytest.mark.parametrize("s", [FULL, SMOKE])
def test_opennmt_config_matches_the_shared_settings(s, tmp_path):
    cfg = opennmt.train_config(s, tmp_path, tmp_path / "out", ("en", "fr"), tmp_path / "v.txt",
                               28868)
    assert (cfg["encoder_type"], cfg["decoder_type"], cfg["rnn_type"]) == ("brnn", "rnn", "LSTM")
    assert cfg["enc_hid_size"] == 512 and cfg["dec_hid_size"] == 512        # 256 per direction
    assert cfg["word_vec_size"] == 256 and cfg["global_attention"] == "general"
    assert cfg["share_vocab"] and cfg["share_embeddings"] and cfg["input_feed"] == 1
    assert cfg["num_workers"] == 0 and cfg["bucket_size"] == 28868
    assert cfg["batch_size"] == s.batch_tokens and cfg["batch_type"] == "tokens"
    assert cfg["data"]["corpus_1"]["path_tgt"].endswith("train.fr")
    tr = opennmt.translate_config(s, tmp_path / "m.pt", tmp_path / "src", tmp_path / "out",
                                  tmp_path / "log")
    assert (tr["beam_size"], tr["batch_size"], tr["batch_type"]) == (5, 64, "sents")
    assert (tr["length_penalty"], tr["alpha"], tr["max_length_ratio"]) == ("wu", 1.0, 1.5)


@pytest.mark.parametrize("s", [FULL, SMOKE])
@pytest.mark.parametrize("feeding", [False, True])
def test_s2s_config_loads_with_the_shared_settings(s, feeding, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(s2s_tool.config(s, tmp_path, input_feeding=feeding)))
    cfg = load_config(path)
    m, t = cfg.model, cfg.training
    assert (m.emb_size, m.enc_hidden, m.dec_hidden, m.attention, m.tied_embeddings) == \
        (256, 256, 512, "luong_general", True)
    assert m.input_feeding is feeding
    assert (t.max_minutes, t.threads, t.batch_tokens, t.early_stopping) == \
        (s.minutes, s.threads, s.batch_tokens, 0)
    assert cfg.data.tokenizer.vocab_size == 8000 and cfg.data.tokenizer.shared
    assert (cfg.testing.beam, cfg.testing.batch_size) == (5, 64)
    assert cfg.data.train == str(tmp_path / "train.parquet")


# ------------------------------------------------------------------------------ logs

JOEY_LOG = """\
2026-12-01 12:20:54,699 - INFO - joeynmt.training - Epoch   1, Step:        5, Batch Loss:     6.166386, Batch Acc: 0.029952, Tokens per Sec:      187, Lr: 0.002000
2026-12-01 12:21:04,000 - INFO - joeynmt.training - Epoch   1, Step:       10, Batch Loss:     5.900000, Batch Acc: 0.040000, Tokens per Sec:      213, Lr: 0.002000
2026-12-01 12:21:08,971 - INFO - joeynmt.prediction - Evaluation result (greedy): bleu:   0.03, chrf:   0.00, loss:   6.05, ppl: 423.08, acc:   0.08, 0.0168[sec]
"""

ONMT_LOG = """\
[2026-12-01 12:25:58,387 INFO] Step 45/100000000; acc: 14.4; ppl: 671.6; xent: 6.5; lr: 0.00200; sents:     200; bsz: 1184/1357/40; 857/983 tok/s;     53 sec;
[2026-12-01 12:25:53,256 INFO] Validation perplexity: 771.166
[2026-12-01 12:26:02,773 INFO] Step 50/100000000; acc: 14.4; ppl: 644.7; xent: 6.4; lr: 0.00200; sents:     218; bsz: 1303/1405/44; 1486/1602 tok/s;     58 sec;
"""


def test_joey_log_parser():
    parsed = joey.parse_log(JOEY_LOG)
    assert parsed["logged_steps"] == 10 and parsed["last_loss"] == 5.9
    assert parsed["logged_tokens_per_s_median"] == 200
    assert parsed["dev_bleu"] == [0.03]
    assert joey.parse_log("")["logged_tokens_per_s_median"] is None


def test_opennmt_log_parser():
    parsed = opennmt.parse_log(ONMT_LOG)
    assert parsed["logged_steps"] == 50 and parsed["last_xent"] == 6.4
    assert parsed["logged_tokens_per_s_median"] == (983 + 1602) / 2      # target side
    assert parsed["dev_ppl"] == [771.166]


def test_opennmt_last_checkpoint(tmp_path):
    assert opennmt.last_checkpoint(tmp_path) is None
    for step in (20, 100, 53):
        (tmp_path / f"model_step_{step}.pt").write_bytes(b"")
    (tmp_path / "model_step_x.pt").write_bytes(b"")
    assert opennmt.last_checkpoint(tmp_path).name == "model_step_100.pt"


def test_s2s_train_output_parser():
    out = "best dev score 21.53 after 1661 steps; 4553 target tokens/s; model: runs/x/best\n"
    assert s2s_tool.parse_train_output(out) == {"best_dev": 21.53, "steps": 1661,
                                               "tokens_per_s": 4553.0}
    assert s2s_tool.parse_train_output("nothing") == {}


# ------------------------------------------------------------------------------ plumbing

def test_install_patch_applies_once_and_refuses_another_file(tmp_path):
    f = tmp_path / "builders.py"
    f.write_text('kwargs = {\n    "verbose": False,\n    "mode": mode,\n}\n')
    patch = install.Patch("builders.py", '    "verbose": False,\n', '    # "verbose": False,  # fix\n',
                          "why")
    install.apply_patch(f, patch)
    once = f.read_text()
    assert '# "verbose"' in once and once.count('"verbose"') == 1
    install.apply_patch(f, patch)
    assert f.read_text() == once                       # idempotent
    g = tmp_path / "other.py"
    g.write_text("nothing to patch\n")
    with pytest.raises(RuntimeError, match="expected 1"):
        install.apply_patch(g, patch)


def test_install_marker_decides_what_is_installed(tmp_path):
    spec = install.PeerSpec(name="toy", requirement="toy==1.0", pins=(("a==1", "why"),))
    assert not install.installed(spec, tmp_path)
    venv = install.venv_dir(spec, tmp_path)
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    (venv / install.MARKER).write_text(json.dumps({"spec": spec.key()}))
    assert install.installed(spec, tmp_path)
    changed = install.PeerSpec(name="toy", requirement="toy==1.1")
    assert not install.installed(changed, tmp_path)


def test_the_peer_specs_name_their_fixes():
    assert joey.SPEC.requirement == "joeynmt==2.3.0" and not joey.SPEC.no_deps
    assert any("verbose" in p.old for p in joey.SPEC.patches)
    assert opennmt.SPEC.requirement == "opennmt-py==3.5.1" and opennmt.SPEC.no_deps
    assert not any(d.startswith("torch") for d in opennmt.SPEC.deps)
    assert any("weights_only=False" in p.new for p in opennmt.SPEC.patches)
    for spec in (joey.SPEC, opennmt.SPEC):
        assert all(p.why and p.new for p in spec.patches)
        assert all("==" in req and why for req, why in spec.pins)


def test_ppid_parser_handles_names_with_spaces_and_parentheses():
    assert measure.parse_ppid("123 (a (b) c) S 77 123 123 0 -1") == 77


def test_tree_rss_sums_a_process_and_its_descendants(tmp_path):
    def proc(pid, ppid, pages):
        d = tmp_path / str(pid)
        d.mkdir()
        (d / "stat").write_text(f"{pid} (x) S {ppid} 0 0")
        (d / "statm").write_text(f"1000 {pages} 0 0 0 0 0")
    proc(10, 1, 5)
    proc(11, 10, 2)
    proc(12, 11, 1)
    proc(13, 1, 100)
    (tmp_path / "self").mkdir()
    assert measure.tree_rss(10, tmp_path) == 8 * measure.PAGE


def test_run_measures_a_child_that_allocates(tmp_path):
    code = "b = bytearray(120 * 2**20); import time; time.sleep(1.5)"
    run = measure.run([sys.executable, "-c", code], tmp_path / "log", measure.thread_env(1))
    assert run.returncode == 0 and not run.timed_out
    assert 120 <= run.maxrss_mb < 400 and run.peak_mb >= run.maxrss_mb
    assert run.wall_s >= 1.5


def test_run_passes_the_exit_status_through_the_launcher(tmp_path):
    run = measure.run([sys.executable, "-c", "print('x'); raise SystemExit(3)"], tmp_path / "log",
                      measure.thread_env(1))
    assert run.returncode == 3 and (tmp_path / "log").read_text().strip() == "x"
    assert 0 < run.maxrss_mb < 100                 # the child's own, not the parent's pages


def test_run_kills_a_child_past_its_timeout(tmp_path):
    run = measure.run([sys.executable, "-c", "import time; time.sleep(30)"], tmp_path / "log",
                      measure.thread_env(1), timeout_s=0.5)
    assert run.timed_out and run.returncode != 0 and run.wall_s < 10


def test_thread_env_sets_every_pool():
    env = measure.thread_env(3, {"PATH": "/bin"})
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "3" and env["PATH"] == "/bin"


def _budget_module():
    spec = importlib.util.spec_from_file_location("peers_budget", RUNNERS / "budget.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_clock_excludes_nested_calls_once_and_keeps_the_budget():
    budget = _budget_module()
    clock = budget.Clock(minutes=0.001)                 # 0.06 s
    assert not clock.out_of_time()                      # not started
    clock.start()

    @clock.excluding
    def inner():
        time.sleep(0.05)

    @clock.excluding
    def outer():
        inner()
        time.sleep(0.05)

    outer()
    assert 0.1 <= clock.excluded_s < 0.5
    time.sleep(0.02)
    assert clock.out_of_time() and clock.deadline_hit
    assert not budget.Clock(minutes=0).out_of_time()    # 0 = no budget


def test_runners_import_nothing_from_s2s_or_bench():
    for name in ("budget.py", "joey_runner.py", "onmt_runner.py", "peak.py"):
        text = (RUNNERS / name).read_text()
        assert "import s2s" not in text and "from s2s" not in text and "bench" not in text


def _row(tokps, sent_s, bleu, tokens=1000, load=1.5):
    return {"train": {"tokens_per_s": tokps, "tokens": tokens, "steps": 10, "peak_rss_mb": 900.0,
                      "max_load": load},
            "decode": {"sentences_per_s": sent_s, "max_load": 1.0},
            "test": {"bleu": bleu, "chrf": 40.0}}


def test_table_gives_s2s_as_multiples_of_each_peer_and_keeps_failed_rows():
    results = {"s2s": _row(3000.0, 60.0, 20.0), "joeynmt": _row(1000.0, 20.0, 15.0, load=4.2),
               "opennmt": {"error": "opennmt-train exited 1: boom"}}
    headers, rows, lines = harness.table(results, {"train_target_tokens_per_epoch": 500}, 2)
    by_tool = {r[0]: dict(zip(headers, r)) for r in rows}
    assert by_tool["s2s"]["epochs"] == 2.0 and by_tool["s2s"]["s2s x tok/s"] == ""
    assert by_tool["Joey NMT 2.3.0"]["s2s x tok/s"] == "3.00x"
    assert by_tool["Joey NMT 2.3.0"]["s2s x sent/s"] == "3.00x"
    assert "boom" in by_tool["OpenNMT-py 3.5.1"]["note"]
    assert by_tool["s2s"]["note"] == "" and by_tool["s2s"]["max load"] == 1.5
    assert "shared machine" in by_tool["Joey NMT 2.3.0"]["note"]
    assert lines == ["s2s / Joey NMT 2.3.0: training tokens/s 3.00x, decoding sentences/s "
                     "3.00x, BLEU +5.00"]


def test_settings_and_arguments():
    args = harness.parse_args(["--smoke", "--minutes", "2", "--threads", "1"])
    s = harness.settings_from(args)
    assert s.minutes == 2 and s.threads == 1 and s.decode_sentences == SMOKE.decode_sentences
    full = harness.settings_from(harness.parse_args([]))
    assert full == FULL and full.minutes == 45 and full.decode_sentences == 256
    assert full.test_sentences == 0 and full.threads == 2
    assert os.path.basename(harness.RUNNERS) == "runners"
