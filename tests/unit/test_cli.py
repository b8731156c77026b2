"""`s2s` subcommands as a user runs them (in-process through cli.main)."""
import json

import pytest

from s2s.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_translate_file_with_bad_bytes_and_empty_lines(toy_model, tmp_path, capsys, caplog):
    source = tmp_path / "in.txt"
    source.write_bytes(b"1 2 3\n\xff\xfe bad\n\n4 5\n")
    code, out, err = run(capsys, "translate", "--model", str(toy_model.model_dir),
                         "--input", str(source), "--beam", "2")
    assert code == 0
    assert out.splitlines() == ["3 2 1", "", "", "5 4"]
    assert "line 2 is not valid UTF-8" in caplog.text and "line 3 is empty" in caplog.text


def test_n_best_format(toy_model, tmp_path, capsys):
    source = tmp_path / "in.txt"
    source.write_text("1 2\n")
    code, out, _ = run(capsys, "translate", "--model", str(toy_model.model_dir), "--input",
                       str(source), "--beam", "3", "--n-best", "3")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3 and lines[0].startswith("0 ||| 2 1 ||| ")


def test_evaluate_json(toy_model, capsys):
    code, out, _ = run(capsys, "evaluate", "--model", str(toy_model.model_dir), "--test",
                       str(toy_model.data_dir / "test.parquet"), "--json", "--limit", "50")
    scores = json.loads(out)
    assert code == 0 and scores["sentences"] == 50 and scores["bleu"] > 90


def test_attention_picture(toy_model, tmp_path, capsys):
    png = tmp_path / "att.png"
    code, out, _ = run(capsys, "attention", "--model", str(toy_model.model_dir), "--text",
                       "1 2 3", "--out", str(png))
    assert code == 0 and png.read_bytes()[:4] == b"\x89PNG" and "3 2 1" in out


@pytest.mark.parametrize("argv, message", [
    (["translate", "--model", "/no/such/model"], "checkpoint directory not found"),
    (["train", "--config", "/no/such.yaml"], "config file not found"),
    (["evaluate", "--model", "/no/such/model", "--test", "x.tsv"], "not found"),
])
def test_clear_errors(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err and "Traceback" not in err


def test_missing_input_file(toy_model, capsys):
    code, _, err = run(capsys, "translate", "--model", str(toy_model.model_dir), "--input",
                       "/no/file.txt")
    assert code == 2 and "input file not found" in err


def test_prepare_toy_and_user_corpus(tmp_path, capsys):
    code, out, _ = run(capsys, "data", "prepare", "toy", "--out", str(tmp_path / "toy"),
                       "--train", "300")
    assert code == 0 and json.loads(out)["train"] == 300
    corpus = tmp_path / "c.tsv"
    corpus.write_text("".join(f"s{i}\tt{i}\n" for i in range(50)))
    code, out, _ = run(capsys, "data", "prepare", "corpus", str(corpus), "--out",
                       str(tmp_path / "user"), "--dev", "5", "--test", "5")
    assert code == 0 and json.loads(out) == {"dev": 5, "test": 5, "train": 40}
    code, _, err = run(capsys, "data", "prepare", "corpus", str(corpus), "--out",
                       str(tmp_path / "u2"), "--dev", "30", "--test", "30")
    assert code == 2 and "cannot hold out" in err
