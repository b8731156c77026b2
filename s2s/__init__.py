"""s2s: LSTM encoder-decoder NMT trained on Ray Train, served from Kafka through Ray Serve."""
import os

# Several torch processes share a node here (Ray Train workers, Serve replicas, the
# trainer beside a test run). OpenMP's default spin-waiting then makes each process
# burn its time slice waiting for preempted siblings: on a busy 2-core machine the toy
# task's training fell from 99% to 5% exact match in the same minute. Sleeping waits
# fix that. Set before torch loads libgomp; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
