"""The two Ray Serve deployments of the streaming application.

    KafkaIngress          one consumer-group member per replica; its poll loop (poll_loop.py) runs
                          on a background thread, since kafka-python blocks, and hands lists of
                          records to the translators through DeploymentHandles, awaited on an
                          event loop of its own (no thread is parked per call).
    TranslatorDeployment  loads one model through an injected loader and merges the lists of
                          concurrent calls into decode batches (decode_queue.py: the batch size counts
                          messages, not lists); decoding runs off the event loop. A decode that
                          outlives route.max_decode_s fails the health check, so Serve replaces
                          the replica instead of leaving it wedged. The same class runs each
                          route's quarantine deployment (app.py): one call at a time, so a crash
                          there is the fault of the one record decoded (suspects.py).

Both record Prometheus metrics (telemetry.py); the ingress also reports its consumer lag to
Serve's autoscaler through ``record_autoscaling_stats`` (lag_policy.py reads it).

Neither is decorated with @serve.deployment here: app.py applies per-route options, and the
classes stay plain enough to construct in a test.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys
import threading
import time
from concurrent.futures import Future

from kafka import KafkaConsumer, KafkaProducer
from ray import serve
from ray.exceptions import ActorUnavailableError, RayActorError
from ray.serve.exceptions import RayServeException
from ray.serve.handle import DeploymentHandle

from .polled import TranslatorCrashed, TranslatorTimeout
from .decode_queue import DecodeQueue
from .config import RouteConfig, StreamConfig
from .delivery import AtLeastOnceDelivery, Delivery, TransactionalDelivery
from .kafka_admin import create_topics
from .kafka_clients import check_credentials, consumer_configs, producer_configs, resolve_bootstrap, resolve_security
from .lag_policy import LAG_METRIC, PARTITIONS_METRIC
from .messages import Reason
from .models import DecodeItem, DecodeList, Loader, TranslateResult, answer_lists, load_route_model, resolve_loader
from .names import quarantine_name, translator_name
from .telemetry import IngressTelemetry, TranslatorTelemetry
from .poll_loop import PollLoop

log = logging.getLogger(__name__)


class TranslatorDeployment:
    """Decodes lists of DecodeItems with one model; one TranslateResult per list."""

    def __init__(self, route: RouteConfig, loader: str | Loader | None = None, role: str = "translator"):
        log_through_serve()
        self._route = route
        self._model = load_route_model(resolve_loader(loader or route.loader), route)
        _limit_torch_threads(route.num_cpus)
        self._telemetry = TranslatorTelemetry(route.name if role == "translator" else f"{route.name}-{role}",
                                              self._model.version)
        self._queue = DecodeQueue(self._decode, route.max_batch_size, route.batch_wait_timeout_s)
        log.info("translator %s: model %s %s from %s", route.name, self._model.name,
                 self._model.version, route.model)

    async def translate(self, items: list[DecodeItem]) -> TranslateResult:
        """One caller's list; decoded in a batch with whatever other lists are waiting."""
        return await self._queue.submit(items)

    def _decode(self, lists: list[list[DecodeItem]]) -> list[TranslateResult]:
        started = time.perf_counter()
        results = answer_lists(self._model, lists)
        self._telemetry.decoded(sum(len(items) for items in lists), time.perf_counter() - started)
        return results

    def check_health(self) -> None:
        """Serve calls this periodically: a decode stuck past max_decode_s has the replica
        replaced (its calls then fail as crashes, and their records become suspects)."""
        running = self._queue.decoding_for()
        if running > self._route.max_decode_s:
            raise RuntimeError(f"a decode has run {running:.0f} s, over routes[{self._route.name}].max_decode_s "
                               f"({self._route.max_decode_s:g} s)")

    def info(self) -> dict[str, str]:
        return {"route": self._route.name, "model": self._model.name, "version": self._model.version}

    def stats(self) -> dict:
        """Decode throughput and batch latency over the last telemetry.WINDOW_S seconds, and the
        decode totals since the replica started (telemetry.DecodeTotals)."""
        return {"route": self._route.name, "model_version": self._model.version,
                **self._telemetry.window.summary(), "totals": self._telemetry.totals.snapshot()}


class KafkaIngress:
    """A consumer-group member that runs the poll loop until Serve stops the replica."""

    def __init__(self, config: StreamConfig, translators: dict[str, DeploymentHandle],
                 quarantines: dict[str, DeploymentHandle]):
        """``translators`` and ``quarantines``: handles by deployment name (names.py)."""
        log_through_serve()
        self._config = config
        self._translators = translators
        self._quarantines = quarantines
        # One quarantine call at a time from this replica (_call_translator says why); Python
        # 3.10+ binds a Semaphore to the loop that first waits on it: the calls loop.
        self._quarantine_turns = {name: asyncio.Semaphore(1) for name in quarantines}
        self._replica = serve.get_replica_context().replica_id.unique_id
        self._calls = asyncio.new_event_loop()
        threading.Thread(target=self._calls.run_forever, name="s2s-calls", daemon=True).start()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._telemetry = IngressTelemetry(config.kafka.dead_letter_topic)
        self._worker = PollLoop(config, self._submit, self._make_consumer, self._make_delivery(),
                                    self._telemetry)
        self._thread = threading.Thread(target=self._run, name="s2s-poll-loop", daemon=True)
        self._thread.start()

    # -- wiring for the worker ---------------------------------------------------------------

    def _submit(self, route: RouteConfig, items: list[DecodeItem], alone: bool = False) -> Future:
        """Called from the poll thread; the returned future completes on the calls loop.
        ``alone``: a suspect's call, to the route's quarantine deployment. ``route`` is a route or
        its canary_route(): its model names the deployment."""
        return asyncio.run_coroutine_threadsafe(self._call_translator(route, items, alone), self._calls)

    async def _call_translator(self, route: RouteConfig, items: list[DecodeItem], alone: bool) -> TranslateResult:
        name = quarantine_name(route) if alone else translator_name(route)
        handle = (self._quarantines if alone else self._translators)[name]
        if not alone:
            return await self._timed_call(name, handle, route, items)
        # The quarantine takes one call at a time. Sent all at once, a crash's hundreds of
        # suspects queued in the handle, those at the back outlived call_timeout_s waiting, were
        # retried and timed out again: a loop without end. One at a time from this replica, the
        # timeout measures a decode (plus at most one call of each other ingress replica).
        async with self._quarantine_turns[name]:
            return await self._timed_call(name, handle, route, items)

    async def _timed_call(self, name: str, handle: DeploymentHandle, route: RouteConfig,
                          items: list[DecodeItem]) -> TranslateResult:
        # A dead translator replica surfaces here (RayActorError) or as a timeout; either way
        # the worker rewinds and the records are decoded again: Serve itself never retries.
        started = time.monotonic()
        try:
            call = handle.translate.remote(DecodeList(items))  # pickled as columns (models.DecodeList)
            return await asyncio.wait_for(call, timeout=self._config.ingress.call_timeout_s)
        except ActorUnavailableError:
            raise  # out of reach, perhaps before the call even arrived: nothing to blame on the records
        except RayActorError as err:  # the process died during the call: maybe one of these records
            hung = time.monotonic() - started >= route.max_decode_s  # the health check's kill
            raise TranslatorCrashed(f"{name} died during a call: {err}",
                                    Reason.DECODE_TIMEOUT if hung else Reason.MODEL_CRASH) from err
        except asyncio.TimeoutError as err:
            raise TranslatorTimeout(f"{name} did not answer in "
                                    f"{self._config.ingress.call_timeout_s:g} s") from err

    def _make_consumer(self) -> KafkaConsumer:
        return KafkaConsumer(**consumer_configs(self._config.kafka, client_id=f"s2s-ingress-{self._replica}"))

    def _make_delivery(self) -> Delivery:
        kafka = self._config.kafka
        client_id = f"s2s-ingress-{self._replica}"
        if kafka.exactly_once:
            # Unique per replica; zombies are fenced by the group generation (KIP-447).
            txn_id = f"{kafka.group_id}-{self._replica}"
            return TransactionalDelivery(lambda: KafkaProducer(**producer_configs(kafka, client_id, txn_id)),
                                         kafka.flush_timeout_s, kafka.request_timeout_ms)
        return AtLeastOnceDelivery(lambda: KafkaProducer(**producer_configs(kafka, client_id)),
                                   kafka.flush_timeout_s)

    def _run(self) -> None:
        try:
            # A wrong password, CA or host name: one clear error, not a bootstrap timeout
            # (create_topics checks too).
            if self._config.kafka.create_topics:
                create_topics(resolve_bootstrap(self._config.kafka), self._config.all_topics(),
                              partitions=self._config.kafka.partitions,
                              replication_factor=self._config.kafka.replication_factor,
                              min_insync_replicas=self._config.kafka.min_insync_replicas,
                              security=resolve_security(self._config.kafka))
            else:
                check_credentials(self._config.kafka)
            self._worker.run(self._stop)
        except BaseException as err:  # noqa: BLE001 - reported by check_health, Serve restarts us
            self._error = err
            log.exception("the poll loop stopped")

    # -- Serve hooks ------------------------------------------------------------------------

    def check_health(self) -> None:
        """Serve calls this periodically; a dead poll loop makes Serve replace the replica."""
        if not self._thread.is_alive() and not self._stop.is_set():
            raise RuntimeError(f"poll loop died: {self._error!r}")

    def stats(self) -> dict:
        """Counters, plus the last telemetry.WINDOW_S seconds: answers/s and end-to-end p50/p99."""
        return {"replica": self._replica, "alive": self._thread.is_alive(), "group_id": self._config.kafka.group_id,
                "input_topics": self._config.input_topics(),
                **dataclasses.asdict(self._worker.stats), "lag": dict(self._telemetry.lags),
                **self._telemetry.window.summary()}

    def record_autoscaling_stats(self) -> dict[str, float]:
        """Serve polls this for the autoscaling policy (lag_policy.KafkaLagPolicy)."""
        return {LAG_METRIC: self._worker.lag, PARTITIONS_METRIC: self._worker.partitions}

    def __del__(self) -> None:
        """Serve calls this on scale-down/shutdown: drain, commit, leave the group."""
        stop = getattr(self, "_stop", None)
        if stop is None:  # __init__ failed early
            return
        stop.set()
        self._thread.join(timeout=self._config.ingress.drain_timeout_s + 10)
        self._calls.call_soon_threadsafe(self._calls.stop)


def log_through_serve() -> None:
    """In a Serve replica, send s2s's log lines (partitions assigned, rewinds, deferred
    deliveries, the model loaded) where Serve writes the replica's own: its file under the
    session's logs/serve/ and stderr, tagged with the replica. Left alone, a replica had no
    handler for them, and Python's last-resort handler printed the warnings alone, to stderr
    alone. Elsewhere (a driver, a test) logging stays the caller's."""
    try:
        serve.get_replica_context()
    except RayServeException:
        return
    ours, serves = logging.getLogger("s2s"), logging.getLogger("ray.serve")
    if ours.handlers:
        return  # the other deployment class of this process did it
    ours.setLevel(logging.INFO)
    for handler in serves.handlers:
        ours.addHandler(handler)
    ours.propagate = False  # Serve's logger does not propagate either: each line written once


def _limit_torch_threads(num_cpus: float) -> None:
    """A torch model decodes on as many threads as the replica has CPUs: more would fight the
    other replicas of the node for cores. (Models without torch never import it.)"""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(max(1, int(num_cpus)))
