"""Kafka + Ray Serve adapters around the core: Kafka topics -> Serve -> Kafka topics.

    config.py         the application's config (a Serve application's ``args``), validated
    messages.py       input decoding (plain text / JSON envelope), reasons for bad input
    routing.py        (input topic, task) -> route
    headers.py        output and dead-letter headers
    models.py         what a translator runs: model protocol, loaders, batch decode
    polled.py         one gathered list of records: plans, translator calls, outputs
    ledger.py         in-flight batches and the offsets safe to commit
    delivery.py       at-least-once (acks=all) and exactly-once (transactional) producing
    poll_loop.py      the ingress poll loop, backpressure, drain on rebalance/shutdown
    kafka_clients.py  consumer/producer settings
    security.py       TLS/SASL settings; secrets read from env vars or files, never shown
    kafka_auth.py     a one-round-trip SASL check: a wrong password fails fast and says so
    telemetry.py      Prometheus metrics (Ray's metrics agent) and the replicas' rolling stats
    lag_policy.py     the Serve autoscaling policy of the ingress: replicas from consumer lag
    deployments.py    the Serve deployments: KafkaIngress, TranslatorDeployment
    app.py            the Serve application builder (fixed replicas or autoscaling)
    local.py          `s2s serve`: run a Serve config file locally
    console.py        `s2s produce` / `s2s consume`
    status.py         `s2s status`: replicas, lag, throughput and latency of running apps
    kafka_admin.py    topic administration and broker readiness
"""
