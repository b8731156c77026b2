"""`s2s cluster`'s config: validated settings and the autoscaler config Ray accepts.

Starting a cluster is covered by tests/integration/cluster/; nothing here starts Ray.
"""
import json

import pytest

from s2s.cli import main
from s2s.cluster.config import (HEAD_NODE_TYPE, WORKER_NODE_TYPE, LocalClusterConfig,
                                autoscaler_config, cluster_config_from_dict)
from s2s.cluster.local import ClusterState, client_env, running_state
from s2s.config import ConfigError


def test_autoscaler_config_passes_ray_validation():
    from ray.autoscaler._private.util import validate_config

    validate_config(autoscaler_config(LocalClusterConfig()))


def test_autoscaler_config_carries_the_settings():
    cfg = LocalClusterConfig(head_cpus=2, worker_cpus=4, max_workers=5, idle_timeout_s=12, port=7001)
    config = autoscaler_config(cfg)
    types = config["available_node_types"]
    assert (config["provider"]["type"], config["provider"]["gcs_address"]) == ("fake_multinode", "127.0.0.1:7001")
    assert config["head_node_type"] == HEAD_NODE_TYPE and types[HEAD_NODE_TYPE]["resources"] == {"CPU": 2}
    assert types[WORKER_NODE_TYPE]["resources"]["CPU"] == 4
    assert types[WORKER_NODE_TYPE]["max_workers"] == config["max_workers"] == 5
    assert config["idle_timeout_minutes"] == pytest.approx(0.2)


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match="cluster.workers"):
        cluster_config_from_dict({"workers": 2})


@pytest.mark.parametrize("field, value", [("worker_cpus", 0), ("max_workers", 0), ("idle_timeout_s", 0),
                                          ("port", 70000), ("dashboard_port", 6391)])
def test_bad_values_are_rejected_by_name(field, value):
    with pytest.raises(ConfigError, match=field):
        LocalClusterConfig().override(**{field: value})


def test_state_round_trips(tmp_path):
    state = ClusterState(123, "/tmp/x", LocalClusterConfig(worker_cpus=3))
    state.write(tmp_path)
    assert ClusterState.read(tmp_path) == state
    assert json.loads((tmp_path / "state.json").read_text())["config"]["worker_cpus"] == 3


def test_a_recorded_but_dead_head_is_not_running(tmp_path):
    ClusterState(2 ** 22 + 7, "/tmp/x", LocalClusterConfig()).write(tmp_path)   # beyond pid_max
    assert running_state(tmp_path) is None


def test_client_env_points_at_loopback():
    env = client_env(LocalClusterConfig(port=7001, dashboard_port=7002))
    assert env["RAY_ADDRESS"] == "127.0.0.1:7001"
    assert env["RAY_API_SERVER_ADDRESS"] == "http://127.0.0.1:7002"


def test_cli_rejects_bad_flags_before_starting_anything(tmp_path, capsys):
    assert main(["cluster", "up", "--worker-cpus", "0", "--dir", str(tmp_path)]) == 2
    assert "worker_cpus" in capsys.readouterr().err
    assert not (tmp_path / "state.json").exists()


def test_cli_status_and_env_without_a_cluster(tmp_path, capsys):
    assert main(["cluster", "status", "--dir", str(tmp_path)]) == 3
    assert "not running" in capsys.readouterr().out
    assert main(["cluster", "env", "--dir", str(tmp_path)]) == 3
    assert main(["cluster", "down", "--dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == "s2s cluster: not running"


def test_a_corrupt_state_file_is_one_line_not_a_traceback(tmp_path, capsys):
    (tmp_path / "state.json").write_text("{not json")
    assert main(["cluster", "status", "--dir", str(tmp_path)]) == 1
    assert "unreadable state file" in capsys.readouterr().err


def test_down_never_touches_a_process_that_reused_the_recorded_pid(tmp_path):
    import subprocess

    from s2s.cluster.local import stop

    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)   # leads its own session
    try:
        ClusterState(stranger.pid, str(tmp_path / "ray-tmp"), LocalClusterConfig()).write(tmp_path)
        assert running_state(tmp_path) is None
        assert stop(tmp_path) is False
        assert stranger.poll() is None and not (tmp_path / "state.json").exists()
    finally:
        stranger.kill()
        stranger.wait()


def test_node_table_lines_up():
    from s2s.cluster.status import format_nodes

    table = format_nodes([{"node_id": "f00", "type": HEAD_NODE_TYPE, "state": "ALIVE", "cpus": 1.0},
                          {"node_id": "f01", "type": WORKER_NODE_TYPE, "state": "DEAD", "cpus": 2.0}])
    assert table.splitlines() == ["NODE  TYPE              STATE  CPU",
                                  "f00   ray.head.default  ALIVE  1",
                                  "f01   cpu_worker        DEAD   2"]
