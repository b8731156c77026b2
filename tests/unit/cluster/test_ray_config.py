"""ray_config.yaml passes Ray's own cluster-config validation (the launcher's JSON schema)."""
from pathlib import Path

import yaml

RAY_CONFIG = Path(__file__).resolve().parents[3] / "ray_config.yaml"


def test_ray_config_passes_ray_validation():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load(RAY_CONFIG.read_text())
    validate_config(prepare_config(config))


def test_node_types_cover_head_cpu_and_gpu():
    config = yaml.safe_load(RAY_CONFIG.read_text())
    types = config["available_node_types"]
    assert config["head_node_type"] == "head" and {"cpu_worker", "gpu_worker"} <= set(types)
    assert types["gpu_worker"]["node_config"]["InstanceType"].startswith("g")
    assert all(t["max_workers"] <= config["max_workers"] for t in types.values())
    assert any("pip install" in c and "s2s" in c for c in config["setup_commands"])


def test_every_node_type_declares_resources_and_bounds():
    config = yaml.safe_load(RAY_CONFIG.read_text())
    assert config["idle_timeout_minutes"] > 0
    for name, node_type in config["available_node_types"].items():
        assert "CPU" in node_type["resources"], name   # the autoscaler plans with these
        assert node_type.get("min_workers", 0) <= node_type["max_workers"], name
    assert config["available_node_types"]["gpu_worker"]["resources"]["GPU"] >= 1


def test_nodes_get_the_package_and_the_kafka_client_config():
    config = yaml.safe_load(RAY_CONFIG.read_text())
    setup = "\n".join(config["setup_commands"])
    checkout = next(remote for remote, local in config["file_mounts"].items() if local == ".")
    assert f"pip install -q -e {checkout}" in setup
    assert "S2S_KAFKA_BOOTSTRAP=" in setup and "> ~/s2s.env" in setup
    starts = [c for c in config["head_start_ray_commands"] + config["worker_start_ray_commands"]
              if "ray start" in c]
    # Raylets (and so Serve replicas and job drivers) inherit the env file's variables.
    assert len(starts) == 2 and all(c.startswith("source ~/s2s.env && ") for c in starts)
    assert not any("0.0.0.0" in c for c in starts)   # the Jobs API is never exposed
