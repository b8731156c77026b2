"""bench/quality.py's rows: what each one switches on, and that every row is a valid config."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bench import quality
from s2s.config import ExperimentConfig

REPO = Path(__file__).resolve().parents[2]


def _switches(raw: dict) -> dict:
    model, training = raw["model"], raw["training"]
    return {"copy": model["copy_attention"], "coverage": model["coverage"],
            "average": training["average_last"], "subword": raw["data"]["tokenizer"]["sampling_alpha"],
            "budget": training["lr_schedule"]}


@pytest.mark.parametrize("config", ["bible-en-fr.yaml", "manpages-summarize.yaml"])
def test_each_row_switches_on_its_technique_alone_and_every_row_is_valid(config):
    raw = yaml.safe_load((REPO / "configs" / config).read_text())
    for row in quality.ROWS:
        built = quality.row_config(raw, row, minutes=7)
        on = {name for name, value in _switches(built).items() if value != quality.OFF[name]}
        expected = set(quality.TECHNIQUES) if row == "all" else {row} - {"baseline"}
        assert on == expected, row
        assert built["training"]["max_minutes"] == 7
        ExperimentConfig.model_validate(built)


def test_a_technique_the_config_sets_keeps_the_configs_setting():
    raw = {"data": {"tokenizer": {"sampling_alpha": 0.3}}, "training": {"average_last": 8}}
    subword = quality.row_config(raw, "subword", minutes=None)
    assert subword["data"]["tokenizer"]["sampling_alpha"] == 0.3
    assert subword["training"]["average_last"] == 0          # off outside its own row
    assert quality.row_config(raw, "all", minutes=None)["training"]["average_last"] == 8
