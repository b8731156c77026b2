#!/usr/bin/env bash
# Refresh the KubeRay CRD schemas the manifest tests validate against
# (tests/unit/cluster/kuberay_crds/*.schema.json): the ray.io/v1 openAPIV3Schema of the
# RayService and RayJob CRDs of a KubeRay release, fetched as its Go module.
#   bash cluster/kuberay/fetch-crd-schemas.sh [v1.5.0]
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
VERSION="${1:-v1.5.0}"
OUT="$REPO/tests/unit/cluster/kuberay_crds"
GOPATH="$(mktemp -d)"; export GOPATH
trap 'chmod -R u+w "$GOPATH"; rm -rf "$GOPATH"' EXIT
DIR="$(go mod download -json "github.com/ray-project/kuberay/ray-operator@$VERSION" \
       | "$REPO/.venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')"
mkdir -p "$OUT"
"$REPO/.venv/bin/python" - "$DIR/config/crd/bases" "$OUT" "$VERSION" <<'PY'
import json, sys
from pathlib import Path
import yaml
bases, out, version = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
for kind in ("rayservices", "rayjobs"):
    crd = yaml.safe_load((bases / f"ray.io_{kind}.yaml").read_text())
    v1 = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    schema = {"$comment": f"KubeRay ray-operator {version}, config/crd/bases/ray.io_{kind}.yaml, ray.io/v1",
              **v1["schema"]["openAPIV3Schema"]}
    (out / f"{kind}.v1.schema.json").write_text(json.dumps(schema, sort_keys=True, separators=(",", ":")) + "\n")
    print(f"wrote {out / f'{kind}.v1.schema.json'}")
PY
