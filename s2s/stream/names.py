"""The names of an s2s application's Serve deployments.

    ingress                     the consumer-group members (KafkaIngress)
    translator-<route>-<hash>   decodes for a route (a canary's model has its own hash)
    quarantine-<route>-<hash>   decodes that route's suspects, one at a time (suspects.py)

The hash follows the model, so a route pointed at a new checkpoint gets new deployments instead
of an in-place update (app.py: why that keeps each partition's model version switch single).
"""
from __future__ import annotations

import hashlib

from .config import RouteConfig

INGRESS_NAME = "ingress"
TRANSLATOR_PREFIX = "translator-"
QUARANTINE_PREFIX = "quarantine-"


def model_tag(route: RouteConfig) -> str:
    """Eight hex digits that change with the route's model (and its quantization)."""
    return hashlib.sha1(f"{route.model}|{route.quantize}".encode()).hexdigest()[:8]


def translator_name(route: RouteConfig) -> str:
    return f"{TRANSLATOR_PREFIX}{route.name}-{model_tag(route)}"


def quarantine_name(route: RouteConfig) -> str:
    return f"{QUARANTINE_PREFIX}{route.name}-{model_tag(route)}"
