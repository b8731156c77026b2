"""Broker readiness for test sessions that use a cluster someone else started."""
from __future__ import annotations

import time

from kafka import KafkaAdminClient
from kafka.errors import KafkaError


def wait_for_broker(bootstrap: str, timeout: float = 60.0) -> None:
    """Block until the cluster answers a metadata request with at least one live broker;
    TimeoutError (with the last error seen) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        wait_ms = int(1000 * max(1.0, min(10.0, deadline - time.monotonic())))
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="s2s-test-admin",
                                     bootstrap_timeout_ms=wait_ms, request_timeout_ms=wait_ms)
            try:
                if admin.describe_cluster()["brokers"]:
                    return
            finally:
                admin.close()
        except (KafkaError, OSError) as exc:
            last_error = exc
        time.sleep(0.5)
    raise TimeoutError(f"no Kafka broker answered at {bootstrap} within {timeout:.0f}s: {last_error!r}")
