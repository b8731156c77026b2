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
