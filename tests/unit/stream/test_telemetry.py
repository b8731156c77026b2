"""The replica-side telemetry helpers (the Ray metric objects are checked by the integration test)."""
import itertools

from s2s.stream import headers as hdr
from s2s.stream.polled import OutRecord
from s2s.stream.telemetry import (LATENCY_SAMPLES, METRICS, DecodeTotals, RollingWindow, _model_version,
                                  dead_letter_reasons, end_to_end_ms, percentile, prometheus_names, spread)

from .fakes import Record


def test_rolling_window_rates_and_percentiles_forget_old_samples():
    clock = iter([0.0, 1.0, 2.0, 12.5, 12.5])
    window = RollingWindow(window_s=10.0, now=lambda: next(clock))
    window.add(100, [10.0, 20.0, 30.0])
    window.add(50, [40.0])
    assert window.summary() == {"msgs_per_s": 15.0, "p50_ms": 20.0, "p99_ms": 40.0}
    assert window.summary() == {"msgs_per_s": 0.0, "p50_ms": None, "p99_ms": None}  # all older than 10 s


def test_spread_keeps_at_most_n_evenly():
    assert spread(list(range(5)), 10) == [0, 1, 2, 3, 4]
    assert spread(list(range(100)), 4) == [0, 25, 50, 75]


def test_end_to_end_latency_is_sampled_per_topic():
    records = [Record("a", 0, i, b"x", timestamp=1_000 + i) for i in range(100)]
    records.append(Record("b", 0, 0, b"y", timestamp=-1))  # no producer timestamp: not sampled
    latencies = end_to_end_ms(records, acked_ms=1_200)
    assert list(latencies) == ["a"] and len(latencies["a"]) == LATENCY_SAMPLES
    assert max(latencies["a"]) == 200 and min(latencies["a"]) > 100


def test_dead_letter_reasons_are_read_from_headers():
    dead = [OutRecord("dlq", b"k", b"v", [(hdr.ERROR_REASON, b"bad_json")]) for _ in range(2)]
    outputs = dead + [OutRecord("out", b"k", b"v", []), OutRecord("dlq", None, b"", [(hdr.ERROR_REASON, b"too_large")])]
    assert dead_letter_reasons(outputs, "dlq") == {"bad_json": 2, "too_large": 1}


def test_prometheus_names_follow_rays_export_rules():
    names = prometheus_names()
    assert "ray_s2s_messages_in_total" in names and "ray_s2s_consumer_lag" in names
    assert {"ray_s2s_decode_latency_ms_bucket", "ray_s2s_decode_latency_ms_count"} <= names
    assert len(names) == sum({"counter": 1, "gauge": 1, "histogram": 3}[kind] for kind in METRICS.values())


def test_percentile_of_nothing_is_none():
    assert percentile([], 99) is None
    assert percentile(list(itertools.repeat(5.0, 3)), 50) == 5.0


def test_answers_are_counted_by_the_model_version_they_carry():
    answer = OutRecord("out", b"k", b"v", [(hdr.SOURCE_TOPIC, b"in"), (hdr.MODEL_VERSION, b"20261201T101500")])
    assert _model_version(answer) == "20261201T101500"
    assert _model_version(OutRecord("dlq", None, b"", [(hdr.ERROR_REASON, b"bad_json")])) == ""


def test_decode_totals_accumulate_and_snapshot_with_the_process_cpu_time():
    totals = DecodeTotals()
    first = totals.snapshot()
    totals.add(64, 0.25)
    totals.add(3, 0.05)
    sum(i * i for i in range(200_000))                     # some CPU time between the snapshots
    second = totals.snapshot()
    assert (first["batches"], first["messages"], first["decode_s"]) == (0, 0, 0.0)
    assert (second["batches"], second["messages"]) == (2, 67)
    assert abs(second["decode_s"] - 0.30) < 1e-9
    assert second["cpu_s"] > first["cpu_s"]
