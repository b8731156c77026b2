"""A local autoscaling Ray cluster: `s2s cluster up | status | env | down`.

Ray's fake multi-node provider runs the real autoscaler on one machine: each "worker node"
it launches is one more raylet on 127.0.0.1, added when tasks, actors or Serve replicas ask
for more CPUs than the cluster has and removed once it has been idle for the timeout.
"""
