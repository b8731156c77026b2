"""Routing by input topic, then by the envelope's task."""
from s2s.stream.config import RouteConfig
from s2s.stream.messages import Reason, Rejection
from s2s.stream.routing import Router

EN_FR = RouteConfig(name="en-fr", input_topic="en", output_topic="fr", model="m1")
EN_SUM = RouteConfig(name="en-sum", input_topic="en", output_topic="sum", model="m2", task="summarization")
MAN = RouteConfig(name="man", input_topic="man", output_topic="man-out", model="m3", task="summarization")
ROUTER = Router([EN_FR, EN_SUM, MAN])


def test_topics():
    assert ROUTER.topics() == ["en", "man"]


def test_no_task_takes_the_first_route_of_the_topic():
    assert ROUTER.route("en", None) is EN_FR
    assert ROUTER.route("man", None) is MAN


def test_task_picks_a_route_on_the_topic():
    assert ROUTER.route("en", "summarization") is EN_SUM
    assert ROUTER.route("en", "translation") is EN_FR


def test_unknown_task_is_rejected_naming_what_is_served():
    rejected = ROUTER.route("man", "translation")
    assert isinstance(rejected, Rejection) and rejected.reason is Reason.UNKNOWN_TASK
    assert "summarization" in rejected.detail


def test_legacy_task_names_still_pick_their_route():
    # Records already in topics may say "translate"/"summarize" (the names before s2s/tasks.py).
    assert ROUTER.route("en", "summarize") is EN_SUM
    assert ROUTER.route("en", "translate") is EN_FR


def test_a_canary_takes_a_stable_share_of_the_keys_and_keyless_records_by_offset():
    route = RouteConfig(name="c", input_topic="cin", output_topic="cout", model="a",
                        canary={"model": "b", "percent": 10})
    router = Router([route])
    keys = [f"user-{i}".encode() for i in range(5000)]
    served = [router.serving(route, key, 0).model for key in keys]
    assert set(served) == {"a", "b"} and 0.08 <= served.count("b") / len(keys) <= 0.12
    assert served == [router.serving(route, key, 7).model for key in keys]   # the offset does not matter
    keyless = [router.serving(route, None, offset).model for offset in range(10_000)]
    assert keyless.count("b") == 1000
    canary = router.serving(route, keys[served.index("b")], 0)
    assert canary.replace(model="a", canary=route.canary) == route   # the same route, but the model
