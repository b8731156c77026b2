"""`s2s status` output, from made-up application states (the integration test runs it for real)."""
import json

from s2s.stream.status import AppStatus, DeploymentStatus, _deployment_status, format_status, to_json

APP = AppStatus("s2s-toy", "toy-group", [
    DeploymentStatus("ingress", 2, 3, 1234.5, 55.2, 120.9),
    DeploymentStatus("translator-toy-1a2b3c4d", 1, 1, 1200.0, None, None, "20261201T101500"),
    DeploymentStatus("translator-toy-5e6f7a8b", 1, 1, 130.0, 40.0, 80.0, "canary-2"),
], {"toy-in-0": 12, "toy-in-1": 0, "toy-in-2": 3})


def test_table_per_application():
    text = format_status([APP])
    lines = text.splitlines()
    assert lines[0] == "application s2s-toy (consumer group toy-group)"
    assert lines[1].split() == ["deployment", "replicas", "msgs/s", "p50", "ms", "p99", "ms", "model"]
    assert lines[2].split() == ["ingress", "2/3", "1,234.5", "55", "121", "-"]
    assert lines[3].split() == ["translator-toy-1a2b3c4d", "1/1", "1,200.0", "-", "-", "20261201T101500"]
    assert lines[4].split() == ["translator-toy-5e6f7a8b", "1/1", "130.0", "40", "80", "canary-2"]
    assert lines[5] == "  lag: 15 (toy-in-0 12, toy-in-1 0, toy-in-2 3)"


def test_nothing_running():
    assert format_status([]) == "no s2s application is running"


def test_json_has_every_field_and_the_total():
    [app] = json.loads(to_json([APP]))
    assert app["total_lag"] == 15 and app["lag"]["toy-in-0"] == 12
    assert app["deployments"][0] == {"name": "ingress", "running": 2, "target": 3, "msgs_per_s": 1234.5,
                                     "p50_ms": 55.2, "p99_ms": 120.9, "model": ""}


def test_deployment_status_sums_rates_and_takes_the_worst_percentiles():
    details = {"target_num_replicas": 3,
               "replicas": [{"state": "RUNNING"}, {"state": "RUNNING"}, {"state": "STARTING"}]}
    stats = [{"msgs_per_s": 10.0, "p50_ms": 5.0, "p99_ms": 50.0, "model_version": "v2"},
             {"msgs_per_s": 2.5, "p50_ms": 7.0, "p99_ms": None, "model_version": "v2"}]
    assert _deployment_status("translator-x-1", details, stats) == DeploymentStatus("translator-x-1", 2, 3, 12.5, 7.0,
                                                                                    50.0, "v2")


def test_status_subcommand_parses():
    from s2s.cli import build_parser

    args = build_parser().parse_args(["status", "--json", "--bootstrap", "h:1"])
    assert (args.address, args.json, args.bootstrap) == ("auto", True, "h:1")
