"""The `ray:` config section and the `s2s train --ray` options."""
from pathlib import Path

import pytest

from s2s.cli import build_parser, main
from s2s.config import ConfigError
from s2s.train.config import RayTrainConfig, load_ray_config, split_config

TOY = Path(__file__).resolve().parents[3] / "configs" / "toy-reverse.yaml"


def test_config_without_ray_section_gets_defaults():
    cfg, ray_cfg = load_ray_config(TOY)
    assert cfg.name == "toy-reverse" and ray_cfg == RayTrainConfig()


def test_ray_section_is_read_and_stripped_before_the_core_loader():
    cfg, ray_cfg = split_config({"data": {"train": "t.parquet"},
                                 "ray": {"workers": 3, "checkpoint_every": 50, "use_gpu": False}})
    assert (ray_cfg.workers, ray_cfg.checkpoint_every, ray_cfg.use_gpu) == (3, 50, False)
    assert cfg.data.train == "t.parquet"


@pytest.mark.parametrize("section, key", [({"ray": {"worker": 2}}, "ray.worker"),
                                          ({"trainig": {}}, "trainig")])
def test_unknown_keys_are_named(section, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        split_config({"data": {"train": "t.parquet"}, **section})


@pytest.mark.parametrize("values, key", [({"workers": 0}, "ray.workers"),
                                         ({"use_gpu": "maybe"}, "ray.use_gpu"),
                                         ({"placement_strategy": "RANDOM"}, "ray.placement_strategy"),
                                         ({"max_failures": -2}, "ray.max_failures")])
def test_bad_values_are_named(values, key):
    with pytest.raises(ConfigError, match=key):
        split_config({"data": {"train": "t.parquet"}, "ray": values})


def test_command_line_overrides_only_what_was_given():
    base = RayTrainConfig(workers=2, run_name="a", max_failures=1)
    new = base.override(workers=4, run_name=None, storage_path="s3://bucket/runs", max_failures=None)
    assert (new.workers, new.run_name, new.storage_path, new.max_failures) == \
        (4, "a", "s3://bucket/runs", 1)


def test_report_interval_defaults_to_eval_every():
    assert RayTrainConfig().report_every(eval_every=100) == 100
    assert RayTrainConfig(checkpoint_every=7).report_every(eval_every=100) == 7


def test_train_subcommand_has_the_ray_options():
    args = build_parser().parse_args(
        ["train", "--config", "c.yaml", "--ray", "--address", "127.0.0.1:6379", "--workers", "2",
         "--storage-path", "/tmp/s", "--run-name", "r", "--max-failures", "5"])
    assert (args.ray, args.address, args.workers, args.storage_path, args.run_name,
            args.max_failures) == (True, "127.0.0.1:6379", 2, "/tmp/s", "r", 5)


def test_ray_options_without_ray_are_a_clear_error(capsys):
    assert main(["train", "--config", str(TOY), "--workers", "2"]) == 2
    assert "--workers only apply with --ray" in capsys.readouterr().err


def test_ray_training_reports_a_bad_key_before_touching_ray(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  train: t.parquet\nray:\n  wrokers: 2\n")
    assert main(["train", "--ray", "--config", str(bad)]) == 2
    assert "unknown config key 'ray.wrokers'" in capsys.readouterr().err


def test_missing_data_path_fails_before_any_ray_work(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(f"data:\n  train: {tmp_path / 'missing.parquet'}\n")
    assert main(["train", "--ray", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "data.train:" in err and "missing.parquet: no such file" in err


def test_a_bad_ray_value_names_the_file_and_the_allowed_values(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("data:\n  train: t.parquet\nray:\n  placement_strategy: RANDOM\n")
    with pytest.raises(ConfigError, match=rf"^{bad}: ray.placement_strategy must be one of PACK, SPREAD, "
                                          r"STRICT_PACK, STRICT_SPREAD, got 'RANDOM'$"):
        load_ray_config(bad)
    cfg, _ = load_ray_config(TOY)
    assert cfg.ray == {}  # the core config keeps no copy of the section
