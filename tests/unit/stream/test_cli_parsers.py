"""The streaming subcommands parse without importing Ray or Kafka; `s2s serve` reads Serve files."""
from pathlib import Path

import pytest

from s2s.cli import build_parser, main
from s2s.stream.config import StreamConfigError
from s2s.stream.local import read_apps

REPO = Path(__file__).resolve().parents[3]


def test_subcommands_parse():
    parser = build_parser()
    args = parser.parse_args(["produce", "--topic", "t", "--key-sep", "TAB", "--bootstrap", "h:1"])
    assert (args.topic, args.key_sep, args.bootstrap) == ("t", "TAB", "h:1")
    args = parser.parse_args(["consume", "--topic", "t", "--count", "3", "--from-beginning", "--headers"])
    assert (args.count, args.timeout, args.from_beginning, args.headers) == (3, 30.0, True, True)
    args = parser.parse_args(["serve", "--config", "c.yaml", "--duration", "5"])
    assert (args.config, args.duration, args.address) == ("c.yaml", 5.0, "local")


def test_read_apps_of_the_shipped_file():
    [app] = read_apps(REPO / "cluster" / "serve" / "en-fr-man.yaml")
    assert app.name == "s2s"
    assert [(r.input_topic, r.output_topic) for r in app.config.routes] == [("en", "fr"), ("man", "man-summaries")]
    assert app.config.kafka.exactly_once


def test_read_apps_rejects_foreign_applications(tmp_path):
    path = tmp_path / "other.yaml"
    path.write_text("applications:\n  - name: x\n    import_path: mymod:app\n")
    with pytest.raises(StreamConfigError, match="import_path"):
        read_apps(path)


def test_user_errors_exit_2(tmp_path, capsys):
    assert main(["serve", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "serve config not found" in capsys.readouterr().err
    assert main(["consume", "--topic", "t", "--count", "0"]) == 2
    assert main(["produce", "--topic", "t", "--file", str(tmp_path / "none.txt")]) == 2


def test_with_model_root_makes_checkpoint_paths_absolute(tmp_path):
    from s2s.stream.local import with_model_root

    [app] = read_apps(REPO / "cluster" / "serve" / "toy.yaml")
    (tmp_path / "runs" / "toy-reverse" / "best").mkdir(parents=True)
    rooted = with_model_root(app, tmp_path)
    assert rooted.config.routes[0].model == str(tmp_path / "runs" / "toy-reverse" / "best")
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        with_model_root(app, tmp_path / "elsewhere")
