"""cluster/kuberay/ manifests: valid against KubeRay's own CRD schemas, and consistent with s2s.

The schemas (tests/unit/cluster/kuberay_crds/, refreshed by cluster/kuberay/fetch-crd-schemas.sh)
are the ray.io/v1 openAPIV3Schema of KubeRay's RayService and RayJob CRDs. They are checked
the way `kubectl apply` (strict field validation) does: a field the schema does not declare is
an error, not silently dropped.
"""
import argparse
import json
import shlex
from pathlib import Path

import jsonschema
import pytest
import yaml

from s2s.stream.config import stream_config_from_dict
from s2s.train.cli_parsers import add_ray_arguments
from s2s.train.config import load_ray_config

REPO = Path(__file__).resolve().parents[3]
KUBERAY = REPO / "cluster" / "kuberay"
SCHEMAS = Path(__file__).with_name("kuberay_crds")
MANIFESTS = {"RayService": ("rayservice-stream.yaml", "rayservices"),
             "RayJob": ("rayjob-train.yaml", "rayjobs")}
CLUSTER_SPEC = {"RayService": "rayClusterConfig", "RayJob": "rayClusterSpec"}
BUILDER = "s2s.stream.app:app_builder"


def manifest(kind: str) -> dict:
    return yaml.safe_load((KUBERAY / MANIFESTS[kind][0]).read_text())


def strict(schema):
    """The schema with unknown fields forbidden wherever Kubernetes would reject them."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if "properties" in out and "additionalProperties" not in out \
            and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def pods(kind: str) -> list[tuple[str, dict]]:
    cluster = manifest(kind)["spec"][CLUSTER_SPEC[kind]]
    groups = [("head", cluster["headGroupSpec"])] + [(g["groupName"], g) for g in cluster["workerGroupSpecs"]]
    return [(name, group["template"]["spec"]) for name, group in groups]


@pytest.mark.parametrize("kind", MANIFESTS)
def test_manifest_passes_the_kuberay_crd_schema(kind):
    doc = manifest(kind)
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == kind
    schema = json.loads((SCHEMAS / f"{MANIFESTS[kind][1]}.v1.schema.json").read_text())
    jsonschema.validate(doc, strict(schema))


def test_strict_schema_rejects_an_unknown_field():
    doc = manifest("RayJob")
    doc["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["maxReplica"] = 3   # typo of maxReplicas
    schema = json.loads((SCHEMAS / "rayjobs.v1.schema.json").read_text())
    with pytest.raises(jsonschema.ValidationError, match="maxReplica"):
        jsonschema.validate(doc, strict(schema))


@pytest.mark.parametrize("kind", MANIFESTS)
def test_cluster_autoscales_within_bounds(kind):
    cluster = manifest(kind)["spec"][CLUSTER_SPEC[kind]]
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["autoscalerOptions"]["idleTimeoutSeconds"] > 0
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"   # no work on the head
    for group in cluster["workerGroupSpecs"]:
        assert group["minReplicas"] <= group.get("replicas", group["minReplicas"]) <= group["maxReplicas"]


@pytest.mark.parametrize("kind", MANIFESTS)
def test_every_container_has_fixed_resources_and_the_shared_volume(kind):
    claim = yaml.safe_load((KUBERAY / "shared-storage.yaml").read_text())["metadata"]["name"]
    for name, pod in pods(kind):
        assert [v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]] == [claim], name
        for container in pod["containers"]:
            res = container["resources"]
            assert res["requests"] == res["limits"] and {"cpu", "memory"} <= set(res["limits"]), name
            assert {"name": "shared", "mountPath": "/shared"} in container["volumeMounts"], name


def test_gpu_group_asks_for_a_gpu():
    gpu = dict(pods("RayService"))["gpu"]["containers"][0]
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == "1" and gpu["image"].endswith("-gpu")


def test_rayservice_serve_config_is_a_valid_s2s_application():
    from ray.serve.schema import ServeDeploySchema

    serve_config = yaml.safe_load(manifest("RayService")["spec"]["serveConfigV2"])
    ServeDeploySchema.model_validate(serve_config)
    # KubeRay's worker readiness probe asks the node's Serve proxy (kuberay#4994).
    assert serve_config["proxy_location"] == "EveryNode"
    (app,) = serve_config["applications"]
    assert app["import_path"] == BUILDER
    config = stream_config_from_dict(app["args"])
    assert config.ingress.autoscaling is not None and all(r.autoscaling for r in config.routes)
    assert all(r.model.startswith("/shared/runs/") for r in config.routes)
    assert config.kafka.bootstrap == ""   # so the pods' S2S_KAFKA_BOOTSTRAP applies
    for name, pod in pods("RayService"):
        assert any(e["name"] == "S2S_KAFKA_BOOTSTRAP" for e in pod["containers"][0]["env"]), name


def test_rayjob_entrypoint_is_the_train_job_with_valid_arguments():
    spec = manifest("RayJob")["spec"]
    python, script, *argv = shlex.split(spec["entrypoint"])
    assert python == "python" and script == "jobs/train.py" and (REPO / script).is_file()
    parser = argparse.ArgumentParser()   # jobs/train.py's own arguments
    parser.add_argument("--config", required=True)
    parser.add_argument("--out")
    add_ray_arguments(parser, ray_flag=False)
    args = parser.parse_args(argv)
    load_ray_config(REPO / args.config)
    assert args.out.startswith("/shared/runs/") and args.data_root == "/shared"
    assert args.storage_path.startswith("/shared/")   # every training pod reaches the checkpoints


def test_rayjob_runs_in_the_checkout_the_image_holds():
    working_dir = yaml.safe_load(manifest("RayJob")["spec"]["runtimeEnvYAML"])["working_dir"]
    dockerfile = (KUBERAY / "Dockerfile").read_text().splitlines()
    assert f"WORKDIR {working_dir}" in dockerfile
    assert any(line.startswith("COPY ") and line.split()[-2:] == [".", working_dir] for line in dockerfile)
