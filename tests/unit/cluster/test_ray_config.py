"""ray_config.yaml passes Ray's own cluster-config validation (the launcher's JSON schema), and
what the schema cannot see: GPU images with a driver, disks, S3 access, rsync filters."""
import shutil
import subprocess
from pathlib import Path

import pytest
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


def test_gpu_nodes_run_an_image_with_the_nvidia_driver_torch_needs():
    config = yaml.safe_load(RAY_CONFIG.read_text())
    gpu = config["available_node_types"]["gpu_worker"]
    assert "deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu" in gpu["node_config"]["ImageId"]
    checks = "\n".join(gpu["worker_setup_commands"])
    assert "-ge 580" in checks and "torch.cuda.is_available()" in checks   # refuse a CPU-only GPU node
    torch = pytest.importorskip("torch")
    assert torch.version.cuda is None or torch.version.cuda.startswith("13.")   # R580+ serves 13.x


def test_root_volumes_hold_the_install_and_workers_reach_s3():
    config = yaml.safe_load(RAY_CONFIG.read_text())
    for name, node_type in config["available_node_types"].items():
        node = node_type["node_config"]
        (root,) = node["BlockDeviceMappings"]
        assert root["DeviceName"] == "/dev/sda1" and root["Ebs"]["VolumeSize"] >= 50, name
        assert node["IamInstanceProfile"]["Name"], name   # workers too: checkpoints to s3://


def test_setup_survives_a_busy_package_manager_and_mounts_shared_storage():
    config = yaml.safe_load(RAY_CONFIG.read_text())
    setup = config["setup_commands"]
    assert "cloud-init status --wait" in setup[0]
    apt = [c for c in setup if "apt-get" in c]
    assert apt and all(c.count("DPkg::Lock::Timeout=") == c.count("apt-get") for c in apt)
    assert any("mount -t nfs4" in c and "/mnt/s2s" in c for c in setup)


def test_example_submit_reads_data_and_writes_models_on_shared_storage():
    header = RAY_CONFIG.read_text().split("cluster_name:")[0]
    submit = header[header.index("python jobs/train.py"):header.index("ray down")]
    assert "--data-root s3://" in submit and "--storage-path s3://" in submit
    assert "--out /mnt/s2s/" in submit


def _rsync_listing(source: Path) -> list[str]:
    """What `ray up` would copy from `source`: rsync --dry-run with Ray's own filter arguments."""
    from ray.autoscaler._private.command_runner import SSHCommandRunner

    if shutil.which("rsync") is None:
        pytest.skip("rsync is not installed")
    config = yaml.safe_load(RAY_CONFIG.read_text())
    options = {key: config.get(key) for key in ("rsync_exclude", "rsync_filter")}
    args = SSHCommandRunner._create_rsync_filter_args(None, options)
    out = subprocess.run(["rsync", "-a", "--dry-run", "--out-format=%n", *args, f"{source}/",
                          "/nonexistent-s2s-rsync-target/"],
                         capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.split()


def test_rsync_filter_leaves_out_what_gitignore_names(tmp_path):
    checkout = tmp_path / "checkout"
    for path in (".venv/bin/python", "data/bible-en-fr/train.parquet", "runs/toy/best/w",
                 ".kafka/kafka.jar", ".git/HEAD", ".ray/cluster/state.json",
                 "s2s/__pycache__/cli.cpython-311.pyc", "s2s.egg-info/PKG-INFO",
                 "s2s/cli.py", "pyproject.toml", "configs/toy-reverse.yaml", "jobs/train.py"):
        (checkout / path).parent.mkdir(parents=True, exist_ok=True)
        (checkout / path).write_text("x")
    shutil.copy(RAY_CONFIG.with_name(".gitignore"), checkout / ".gitignore")
    copied = set(_rsync_listing(checkout))
    assert {"s2s/cli.py", "pyproject.toml", "configs/toy-reverse.yaml", "jobs/train.py"} <= copied
    leaked = [p for p in copied if p.split("/")[0] in
              {".venv", "data", "runs", ".kafka", ".git", ".ray", "s2s.egg-info"} or "__pycache__" in p]
    assert leaked == []


def test_rsync_of_this_checkout_copies_no_venv_git_or_data():
    copied = _rsync_listing(RAY_CONFIG.parent)
    assert "s2s/train/launcher.py" in copied and "ray_config.yaml" in copied
    assert not [p for p in copied if p.split("/")[0] in {".venv", ".git", "data", ".kafka", "runs"}]
