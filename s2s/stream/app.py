"""The Serve application: one KafkaIngress deployment, and per route a translator deployment
plus its quarantine (the same class, one replica taking one call at a time: suspects.py); a
route with a canary gets a second pair for the canary's model.

Translator and quarantine deployments are named after their route and a hash of their model
(translator-<route>-<hash>). Deploying the same application with a route pointed at a new
checkpoint therefore adds new deployments rather than updating the old ones in place, and
replaces the ingress (its config changed): the old ingress drains and commits, the new one
calls only the new model, so on each partition the model version switches once. Before
anything reaches Serve, every model is loaded once here: one that cannot load is refused with
CheckpointRefused and the running application is left as it was.

Serve config files point at the builder and pass the stream config as ``args``:

    applications:
      - name: s2s-toy
        import_path: s2s.stream.app:app_builder
        args: {kafka: {...}, routes: [{name: reverse, input_topic: ..., model: ...}]}

`serve run FILE`, `serve deploy FILE`, `s2s serve --config FILE` and jobs/deploy.py all build
the application through ``app_builder``; tests and benchmarks call ``build_app`` and may
inject a loader (e.g. the identity model).
"""
from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application

from .config import (TRANSLATOR_HEALTH_PERIOD_S, TRANSLATOR_SHUTDOWN_S, AutoscalingBounds, RouteConfig,
                     StreamConfig, stream_config_from_dict)
from .deployments import KafkaIngress, TranslatorDeployment
from .kafka_clients import resolve_bootstrap, resolve_security
from .lag_policy import POLICY_PATH
from .models import Loader, load_route_model, resolve_loader
from .names import INGRESS_NAME, quarantine_name, translator_name

SHUTDOWN_MARGIN_S = 15  # on top of the drain: leaving the group and closing the producer


class CheckpointRefused(ValueError):
    """A route's model does not load; nothing was deployed."""


def served_models(config: StreamConfig) -> list[RouteConfig]:
    """Each route, and each route's canary, as the deployment that decodes for it sees it."""
    return [variant for route in config.routes for variant in (route, route.canary_route()) if variant]


def build_app(config: StreamConfig, loader: str | Loader | None = None) -> Application:
    """Bind the deployments. ``loader`` (if given) replaces every route's loader.

    The bootstrap address and the security settings are fixed here, on the machine that builds
    the application, so the replicas do not depend on their own environment (the secrets they
    name are still read in the replicas).
    """
    kafka = config.kafka.replace(bootstrap=resolve_bootstrap(config.kafka), security=resolve_security(config.kafka))
    config = config.replace(kafka=kafka)
    models = served_models(config)
    for route in models:
        check_loads(route, loader)
    translators = {translator_name(route): _translator(route, loader) for route in models}
    quarantines = {quarantine_name(route): _quarantine(route, loader) for route in models}
    ingress = serve.deployment(KafkaIngress).options(
        name=INGRESS_NAME,
        **_ingress_replicas(config),
        ray_actor_options={"num_cpus": config.ingress.num_cpus},
        graceful_shutdown_timeout_s=config.ingress.drain_timeout_s + SHUTDOWN_MARGIN_S,
        health_check_period_s=5,
    )
    return ingress.bind(config, translators, quarantines)


def _ingress_replicas(config: StreamConfig) -> dict[str, Any]:
    """A fixed replica count, or Serve autoscaling with the lag policy (lag_policy.py)."""
    scaling = config.ingress.autoscaling
    if scaling is None:
        return {"num_replicas": config.ingress.num_replicas}
    policy = {"policy_function": POLICY_PATH, "policy_kwargs": {"target_lag": scaling.target_lag}}
    return {"autoscaling_config": {**_serve_bounds(scaling), "policy": policy}}


def _serve_bounds(scaling: AutoscalingBounds) -> dict[str, Any]:
    """The part of Serve's autoscaling_config both sections share."""
    return {"min_replicas": scaling.min_replicas, "max_replicas": scaling.max_replicas,
            "upscale_delay_s": scaling.upscale_delay_s, "downscale_delay_s": scaling.downscale_delay_s,
            "look_back_period_s": scaling.look_back_period_s, "metrics_interval_s": scaling.metrics_interval_s}


def _translator_replicas(route) -> dict[str, Any]:
    """A fixed replica count, or Serve's own scaling on ongoing requests (lists in flight)."""
    if route.autoscaling is None:
        return {"num_replicas": route.num_replicas}
    return {"autoscaling_config": {**_serve_bounds(route.autoscaling),
                                   "target_ongoing_requests": route.autoscaling.target_ongoing_requests}}


def check_loads(route: RouteConfig, loader: str | Loader | None) -> None:
    """Load the route's model once, on CPU, where the application is built; CheckpointRefused
    (naming the route and the path) if it cannot."""
    try:
        load_route_model(resolve_loader(loader or route.loader), route.replace(device="cpu"))
    except Exception as err:  # noqa: BLE001 - whatever the loader raises, the deploy is refused
        raise CheckpointRefused(f"routes[{route.name}]: model {route.model} does not load ({err}); nothing was "
                                "deployed, a running application keeps its current models") from err


def _translator(route, loader: str | Loader | None) -> Application:
    deployment = serve.deployment(TranslatorDeployment).options(
        name=translator_name(route),
        **_translator_replicas(route),
        max_ongoing_requests=route.max_ongoing_requests,
        ray_actor_options={"num_cpus": route.num_cpus, "num_gpus": route.num_gpus},
        health_check_period_s=TRANSLATOR_HEALTH_PERIOD_S,
        graceful_shutdown_timeout_s=TRANSLATOR_SHUTDOWN_S,
    )
    return deployment.bind(route, loader)


def _quarantine(route, loader: str | Loader | None) -> Application:
    """Where suspects are decoded alone. max_ongoing_requests=1: the other ingress replicas'
    calls wait in their handles, not in this process, so a crash here fails exactly one call.
    On CPU with a small reservation, so it is schedulable whatever the translators hold; always
    up (a replica started on demand would make the first suspects' calls time out waiting)."""
    quarantined = route.replace(device="cpu", num_gpus=0.0)
    deployment = serve.deployment(TranslatorDeployment).options(
        name=quarantine_name(route),
        num_replicas=1,
        max_ongoing_requests=1,
        ray_actor_options={"num_cpus": route.quarantine_num_cpus},
        health_check_period_s=TRANSLATOR_HEALTH_PERIOD_S,
        graceful_shutdown_timeout_s=TRANSLATOR_SHUTDOWN_S,
    )
    return deployment.bind(quarantined, loader, "quarantine")


def app_builder(args: dict[str, Any]) -> Application:
    """Serve application builder: ``args`` is the stream config mapping (see config.py)."""
    return build_app(stream_config_from_dict(args))
