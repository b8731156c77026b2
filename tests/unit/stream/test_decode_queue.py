"""Dynamic batching: concurrent lists merge into one decode; what queues during a decode merges
into the next one; batches never exceed max_items messages (unless one list alone does)."""
import asyncio
import threading

import pytest

from s2s.stream.decode_queue import DecodeQueue


class Decoder:
    """Upper-cases every list; the first call can be held until ``release`` is set."""

    def __init__(self, hold_first: bool = False, fail_on: str | None = None):
        self.batches: list[list[list[str]]] = []
        self.started = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()
        self.fail_on = fail_on

    def __call__(self, lists):
        self.batches.append([list(items) for items in lists])
        self.started.set()
        self.release.wait(10)
        if any(self.fail_on in items for items in lists):
            raise RuntimeError("decoder broke")
        return [[text.upper() for text in items] for items in lists]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=10))


def test_concurrent_lists_share_one_decode():
    decoder = Decoder()

    async def main():
        queue = DecodeQueue(decoder, max_items=10, wait_s=0.05)
        return await asyncio.gather(queue.submit(["a", "b"]), queue.submit(["c"]), queue.submit(["d"]))

    assert run(main()) == [["A", "B"], ["C"], ["D"]]
    assert decoder.batches == [[["a", "b"], ["c"], ["d"]]]


def test_lists_that_queue_during_a_decode_form_the_next_batch_together():
    decoder = Decoder(hold_first=True)

    async def main():
        queue = DecodeQueue(decoder, max_items=10, wait_s=0.0)
        first = asyncio.create_task(queue.submit(["a"]))
        await asyncio.to_thread(decoder.started.wait, 5)  # "a" is decoding
        rest = [asyncio.create_task(queue.submit([text])) for text in "bcd"]
        await asyncio.sleep(0)  # one turn of the loop: the three tasks queue up behind the decode
        decoder.release.set()
        return await first, [await task for task in rest]

    assert run(main()) == (["A"], [["B"], ["C"], ["D"]])
    assert decoder.batches == [[["a"]], [["b"], ["c"], ["d"]]]


def test_batches_stop_at_max_items_and_a_big_list_goes_alone():
    decoder = Decoder()

    async def main():
        queue = DecodeQueue(decoder, max_items=3, wait_s=0.05)
        return await asyncio.gather(queue.submit(["a", "b"]), queue.submit(["c", "d"]),
                                    queue.submit(["e", "f", "g", "h"]))

    run(main())
    assert decoder.batches == [[["a", "b"]], [["c", "d"]], [["e", "f", "g", "h"]]]


def test_a_failed_decode_fails_its_callers_and_the_next_batch_still_runs():
    decoder = Decoder(fail_on="x")

    async def main():
        queue = DecodeQueue(decoder, max_items=10, wait_s=0.05)
        failed = await asyncio.gather(queue.submit(["x"]), queue.submit(["y"]), return_exceptions=True)
        return failed, await queue.submit(["z"])

    failed, after = run(main())
    assert all(isinstance(result, RuntimeError) for result in failed)
    assert after == ["Z"]


def test_a_cancelled_caller_is_skipped():
    decoder = Decoder(hold_first=True)

    async def main():
        queue = DecodeQueue(decoder, max_items=10, wait_s=0.0)
        first = asyncio.create_task(queue.submit(["a"]))
        await asyncio.to_thread(decoder.started.wait, 5)
        gone = asyncio.create_task(queue.submit(["b"]))
        await asyncio.sleep(0)  # one turn of the loop: "b" is queued
        gone.cancel()
        decoder.release.set()
        await first
        with pytest.raises(asyncio.CancelledError):
            await gone
        return await queue.submit(["c"])

    assert run(main()) == ["C"]
    assert ["b"] not in [items for batch in decoder.batches for items in batch]


def test_a_hung_decode_fails_the_translators_health_check():
    """A decode past routes[].max_decode_s makes check_health raise, so Serve replaces the
    replica instead of leaving it wedged (a stalled replica passes Serve's default check)."""
    from s2s.stream.config import RouteConfig
    from s2s.stream.deployments import TranslatorDeployment

    decoder = Decoder(hold_first=True)
    translator = TranslatorDeployment.__new__(TranslatorDeployment)  # no model, no Ray: the check alone
    translator._route = RouteConfig(name="r", input_topic="in", output_topic="out", model="m", max_decode_s=0.2)
    translator._queue = DecodeQueue(decoder, max_items=4, wait_s=0)

    async def scenario():
        call = asyncio.create_task(translator._queue.submit(["a"]))
        await asyncio.to_thread(decoder.started.wait, 5)
        translator.check_health()  # just started: healthy
        await asyncio.sleep(0.3)
        with pytest.raises(RuntimeError, match="max_decode_s"):
            translator.check_health()
        decoder.release.set()
        assert await call == ["A"]
        translator.check_health()  # nothing running any more

    asyncio.run(scenario())
