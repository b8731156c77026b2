"""A driver that asks the cluster for more CPUs than its head has, until its stdin closes.

    python tests/integration/cluster/demand.py ACTORS    # RAY_ADDRESS & co. from `s2s cluster env`

Prints `capacity <JSON>`, the most resources Ray says the cluster can grow to, then starts
ACTORS actors of 1 CPU each, prints `placed <node id> ...` once every one of them answers,
and holds them (the demand) until stdin is closed.
"""
import json
import sys

import ray


@ray.remote(num_cpus=1)
class Holder:
    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()


def main() -> None:
    ray.init(log_to_driver=False)
    from ray._private.state import state
    print("capacity", json.dumps(state.get_max_resources_from_cluster_config()), flush=True)
    holders = [Holder.remote() for _ in range(int(sys.argv[1]))]
    print("placed", *ray.get([h.node_id.remote() for h in holders]), flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
