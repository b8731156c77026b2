"""Kafka + Ray Serve adapters around the core: Kafka topics -> Serve -> Kafka topics.

    config.py         the application's config (a Serve application's ``args``), validated
    messages.py       input decoding (plain text / JSON envelope), reasons for bad input
    routing.py        (input topic, task) -> route, and a route's canary share of the keys
    headers.py        output and dead-letter headers, read safely whatever their bytes
    tracing.py        W3C trace context carried from an input to its output or dead letter
    out_records.py    the one answer or dead letter per record, always under the request size
    models.py         what a translator runs: model protocol, loaders, batch decode
    polled.py         one gathered list of records: plans, translator calls, outputs
    suspects.py       the retry budget of records in calls that crashed or hung the translator
    ledger.py         in-flight batches and the offsets safe to commit
    delivery.py       at-least-once (acks=all) and exactly-once (transactional) producing
    poll_loop.py      the ingress poll loop, backpressure, drain on rebalance/shutdown
    decode_queue.py   the translator's dynamic batching of concurrent callers' lists
    kafka_clients.py  consumer/producer settings (assignor, isolation, idempotence)
    security.py       TLS/SASL settings; secrets read from env vars or files, never shown
    kafka_auth.py     a one-round-trip TLS + SASL check: a wrong CA, host or password fails fast
    telemetry.py      Prometheus metrics (Ray's metrics agent) and the replicas' rolling stats
    lag_policy.py     the Serve autoscaling policy of the ingress: replicas from consumer lag
    names.py          the deployments' names (translators named after their model's hash)
    deployments.py    the Serve deployments: KafkaIngress, TranslatorDeployment
    app.py            the Serve application builder (fixed replicas or autoscaling, canaries)
    local.py          `s2s serve`: run a Serve config file locally
    console.py        `s2s produce` / `s2s consume`
    status.py         `s2s status`: replicas, lag, throughput and latency of running apps
    kafka_admin.py    topic administration
"""
