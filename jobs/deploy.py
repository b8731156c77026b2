"""Ray job entrypoint: deploy (or delete) the streaming applications of a Serve config file.

    ray job submit --working-dir . -- python jobs/deploy.py --config cluster/serve/toy.yaml \
        --model-root /abs/path/of/the/checkout

The applications outlive the job (Serve's controller is detached); remove them with
`python jobs/deploy.py --config FILE --delete` (also as a job) or `serve shutdown`. The job's
working dir is an upload without git-ignored files such as runs/, so relative checkpoint paths
are resolved under --model-root (default: the job's working dir).

Run it again with a route pointed at a new checkpoint to roll that model out while the stream
runs (README, "Rolling out a new model"); a checkpoint that does not load is refused before
Serve sees it, and the running application keeps its current model.
"""
import argparse
import sys

from s2s.stream.app import CheckpointRefused
from s2s.stream.local import app_stats, delete, deploy, read_apps, with_model_root


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="Serve config file (cluster/serve/*.yaml)")
    parser.add_argument("--model-root", default=".", help="directory relative checkpoint paths are under")
    parser.add_argument("--delete", action="store_true", help="delete the applications instead")
    args = parser.parse_args()
    specs = read_apps(args.config)

    import ray

    ray.init()  # inside a job: the job's cluster
    if args.delete:
        delete(specs)
        return 0
    try:
        deploy([with_model_root(spec, args.model_root) for spec in specs])
    except (CheckpointRefused, FileNotFoundError) as err:  # the running applications are left as they were
        print(f"deploy refused: {err}", file=sys.stderr)
        return 2
    for spec in specs:
        replicas = app_stats(spec.name)
        print(f"{spec.name}: running, {len(replicas)} ingress replica(s) polling")
    return 0


if __name__ == "__main__":
    sys.exit(main())
