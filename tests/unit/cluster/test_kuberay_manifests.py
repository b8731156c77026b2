"""cluster/kuberay/ manifests: valid against KubeRay's own CRD schemas, and consistent with s2s.

The schemas (tests/unit/cluster/kuberay_crds/, refreshed by cluster/kuberay/fetch-crd-schemas.sh)
are the ray.io/v1 openAPIV3Schema of KubeRay's RayService and RayJob CRDs. They are checked
the way `kubectl apply` (strict field validation) does: a field the schema does not declare is
an error, not silently dropped. The rest checks what no schema can: that every model a route
decodes with is trained by a RayJob here, that the volume can be ReadWriteMany and writable,
that images name a registry, that the Jobs API is fenced off.
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
             "RayJob": ("rayjob-train.yaml", "rayjobs"),
             "RayJob-manpages": ("rayjob-train-manpages.yaml", "rayjobs")}
CLUSTER_SPEC = {"RayService": "rayClusterConfig", "RayJob": "rayClusterSpec",
                "RayJob-manpages": "rayClusterSpec"}
RAYJOBS = ("RayJob", "RayJob-manpages")
BUILDER = "s2s.stream.app:app_builder"
IMAGE_USER = (1000, 100)        # rayproject/ray's `ray` user: uid 1000, gid 100 (users)


def manifest(kind: str) -> dict:
    return yaml.safe_load((KUBERAY / MANIFESTS[kind][0]).read_text())


def every_document() -> list[dict]:
    return [doc for path in sorted(KUBERAY.glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text()) if doc]


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
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == kind.split("-")[0]
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
        claims = [v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]
                  if "persistentVolumeClaim" in v]
        assert claims == [claim], name
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


def train_arguments(kind: str) -> argparse.Namespace:
    python, script, *argv = shlex.split(manifest(kind)["spec"]["entrypoint"])
    assert python == "python" and script == "jobs/train.py" and (REPO / script).is_file()
    parser = argparse.ArgumentParser()   # jobs/train.py's own arguments
    parser.add_argument("--config", required=True)
    parser.add_argument("--out")
    add_ray_arguments(parser, ray_flag=False)
    return parser.parse_args(argv)


@pytest.mark.parametrize("kind", RAYJOBS)
def test_rayjob_entrypoint_is_the_train_job_with_valid_arguments(kind):
    args = train_arguments(kind)
    load_ray_config(REPO / args.config)
    assert args.out.startswith("/shared/runs/") and args.data_root == "/shared"
    assert args.storage_path.startswith("/shared/")   # every training pod reaches the checkpoints


@pytest.mark.parametrize("kind", RAYJOBS)
def test_rayjob_runs_in_the_checkout_the_image_holds(kind):
    working_dir = yaml.safe_load(manifest(kind)["spec"]["runtimeEnvYAML"])["working_dir"]
    dockerfile = (KUBERAY / "Dockerfile").read_text().splitlines()
    assert f"WORKDIR {working_dir}" in dockerfile
    assert any(line.startswith("COPY ") and line.split()[-2:] == [".", working_dir] for line in dockerfile)


def test_every_route_decodes_with_a_model_a_rayjob_here_trains():
    serve_config = yaml.safe_load(manifest("RayService")["spec"]["serveConfigV2"])
    routes = stream_config_from_dict(serve_config["applications"][0]["args"]).routes
    trained = {f"{train_arguments(kind).out.rstrip('/')}/best" for kind in RAYJOBS}
    assert {r.model for r in routes} <= trained, (sorted(r.model for r in routes), trained)
    rayjob_files = {path.name for path in KUBERAY.glob("rayjob-*.yaml")}
    assert rayjob_files == {MANIFESTS[kind][0] for kind in RAYJOBS}   # none left untested


@pytest.mark.parametrize("kind", RAYJOBS)
def test_a_failed_rayjob_is_retried_and_submitted_by_the_operator(kind):
    spec = manifest(kind)["spec"]
    assert spec["backoffLimit"] >= 1                  # each retry resumes from the checkpoints
    assert spec["submissionMode"] == "HTTPMode"       # no submitter pod needs port 8265
    assert "kubectl replace --force -f" in (KUBERAY / MANIFESTS[kind][0]).read_text()


def test_the_shared_claim_names_a_storage_class_that_can_share():
    claim = yaml.safe_load((KUBERAY / "shared-storage.yaml").read_text())
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"] and claim["spec"]["storageClassName"]
    comments = (KUBERAY / "shared-storage.yaml").read_text()
    assert all(name in comments for name in ("efs-sc", "standard-rwx", "azurefile-csi", "nfs-client"))
    efs = yaml.safe_load((KUBERAY / "storageclass-efs.yaml").read_text())
    assert efs["metadata"]["name"] == "efs-sc" and efs["provisioner"] == "efs.csi.aws.com"
    assert (int(efs["parameters"]["uid"]), int(efs["parameters"]["gid"])) == IMAGE_USER


@pytest.mark.parametrize("kind", MANIFESTS)
def test_the_head_makes_the_shared_directories_the_pods_user_s(kind):
    uid, gid = IMAGE_USER
    for name, pod in pods(kind):
        assert pod["securityContext"]["fsGroup"] == gid, name
    head = dict(pods(kind))["head"]
    (init,) = head["initContainers"]
    script = init["command"][-1]
    assert init["securityContext"]["runAsUser"] == 0 and f"chown {uid}:{gid} /shared " in script
    assert all(f"/shared/{d}" in script for d in ("data", "runs", "ray-checkpoints"))


def test_every_image_names_a_registry():
    images = [c["image"] for doc in every_document() for c in _containers(doc)]
    assert len(images) >= 8
    for image in images:
        first = image.split("/")[0]
        assert "/" in image and ("." in first or ":" in first or first == "localhost"), image


def _containers(doc: dict) -> list[dict]:
    """Every container and init container of a manifest, wherever its pod templates are."""
    found = []
    def walk(node):
        if isinstance(node, dict):
            for key in ("containers", "initContainers"):
                found.extend(node.get(key) or [])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(doc)
    return found


def test_the_dockerfile_installs_dependencies_before_the_source_and_cuda_once():
    lines = [line for line in (KUBERAY / "Dockerfile").read_text().splitlines()
             if line and not line.startswith("#")]
    copies = [i for i, line in enumerate(lines) if line.startswith("COPY ")]
    installs = [i for i, line in enumerate(lines) if "pip install" in line]
    assert lines[copies[0]].split()[-2] == "pyproject.toml"       # the dependencies alone first
    assert copies[0] < installs[0] < copies[1] < installs[-1]
    assert "--no-deps" in lines[installs[-1]]                      # the source layer adds no deps
    assert not any("-gpu" in line for line in lines if line.startswith(("ARG BASE", "FROM")))


def test_kafka_security_comes_from_the_secret_on_every_stream_pod(tmp_path):
    from s2s.stream.security import load_security_file

    secret = yaml.safe_load((KUBERAY / "kafka-secret.yaml").read_text())
    settings = secret["stringData"]["security.yaml"]
    (tmp_path / "security.yaml").write_text(settings)
    security = load_security_file(tmp_path / "security.yaml")     # valid, and names files only
    assert security.sasl and security.tls
    mount = "/etc/s2s/kafka"
    assert security.sasl_plain_password_file.startswith(mount) and security.ssl_cafile.startswith(mount)
    assert {"password", "ca.pem"} <= set(secret["stringData"])
    serve_config = yaml.safe_load(manifest("RayService")["spec"]["serveConfigV2"])
    assert stream_config_from_dict(serve_config["applications"][0]["args"]).kafka.security is None
    for name, pod in pods("RayService"):
        (container,) = pod["containers"]
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["S2S_KAFKA_SECURITY"] == f"{mount}/security.yaml", name
        volume = next(v for v in pod["volumes"] if "secret" in v)
        assert volume["secret"]["secretName"] == secret["metadata"]["name"], name
        assert {"name": volume["name"], "mountPath": mount, "readOnly": True} in container["volumeMounts"]


def test_the_network_policy_keeps_the_jobs_api_to_the_operator():
    policy = yaml.safe_load((KUBERAY / "networkpolicy-dashboard.yaml").read_text())
    assert policy["kind"] == "NetworkPolicy" and policy["spec"]["policyTypes"] == ["Ingress"]
    # KubeRay labels head pods ray.io/node-type=head: the policy selects every head here.
    assert policy["spec"]["podSelector"] == {"matchLabels": {"ray.io/node-type": "head"}}
    for kind in MANIFESTS:
        ports = [p["containerPort"] for p in dict(pods(kind))["head"]["containers"][0]["ports"]]
        assert 8265 in ports, kind

    def opens(rule, port):
        return any(p.get("protocol", "TCP") == "TCP" and p["port"] <= port <= p.get("endPort", p["port"])
                   for p in rule["ports"])

    to_dashboard = [rule for rule in policy["spec"]["ingress"] if opens(rule, 8265)]
    assert [peer["podSelector"]["matchLabels"] for rule in to_dashboard for peer in rule["from"]] == [
        {"app.kubernetes.io/name": "kuberay-operator"}]
    assert any(opens(rule, 6379) for rule in policy["spec"]["ingress"])   # workers reach the GCS


def test_the_shell_pod_is_a_valid_pod_spec():
    """Checked against the PodTemplateSpec schema KubeRay's CRD embeds (the core API's own)."""
    rayjobs = json.loads((SCHEMAS / "rayjobs.v1.schema.json").read_text())
    template = rayjobs["properties"]["spec"]["properties"]["rayClusterSpec"]["properties"][
        "headGroupSpec"]["properties"]["template"]
    pod = yaml.safe_load((KUBERAY / "shared-shell.yaml").read_text())
    assert pod["kind"] == "Pod"
    jsonschema.validate({"metadata": pod["metadata"], "spec": pod["spec"]}, strict(template))
    assert pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "s2s-shared"
