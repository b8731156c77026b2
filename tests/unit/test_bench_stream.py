"""bench/stream_bench.py: the translators' decode totals between two snapshots, and the int8
backlog set against the fp32 one of the same capacity round."""
from __future__ import annotations

import pytest

from bench.stream_bench import backlog_ratios, decoder_use, model_pipeline, route_quantize


def test_decoder_use_is_the_difference_of_two_snapshots_over_their_span():
    before = {"batches": 10, "messages": 1000, "decode_s": 2.0, "cpu_s": 30.0, "at": 100.0}
    after = {"batches": 30, "messages": 5000, "decode_s": 5.0, "cpu_s": 33.5, "at": 104.0}
    use = decoder_use(before, after)
    assert use["decode_batches"] == 20
    assert use["mean_batch"] == 200
    assert use["decode_ms_per_msg"] == pytest.approx(0.75)      # 3 s over 4,000 messages
    assert use["decode_busy"] == pytest.approx(0.75)            # 3 s of the 4 s span
    assert use["translator_cpu_per_s"] == pytest.approx(0.875)


def test_decoder_use_of_a_span_without_decodes_has_no_batch_figures():
    same = {"batches": 3, "messages": 9, "decode_s": 0.5, "cpu_s": 1.0, "at": 5.0}
    use = decoder_use(same, {**same, "at": 7.0})
    assert use["mean_batch"] is None and use["decode_ms_per_msg"] is None
    assert use["decode_busy"] == 0.0


def test_int8_backlogs_are_set_against_the_fp32_backlog_of_the_same_round():
    rounds = [{"pipeline": "model", "offered": "backlog 1", "msgs_per_s": 100.0},
              {"pipeline": "model-int8", "offered": "backlog 1", "msgs_per_s": 150.0},
              {"pipeline": "model", "offered": "backlog 2", "msgs_per_s": 80.0},
              {"pipeline": "model-int8", "offered": "backlog 2", "msgs_per_s": 160.0}]
    assert backlog_ratios(rounds, "int8", "fp32") == [1.5, 2.0]


def test_fp32_is_the_checkpoint_as_stored_and_keeps_the_rows_name_it_had():
    assert route_quantize("fp32") is None and route_quantize("int8") == "int8"
    assert model_pipeline("fp32") == "model" and model_pipeline("int8") == "model-int8"
