"""Deliveries in transit leave the queue oldest first, only once done; a rewind forgets them all."""
from s2s.stream.in_transit import InTransit, Transit

from .fakes import HeldSend


def delivery(batches):
    return InTransit(batches, [], [], HeldSend())


def test_only_the_oldest_delivery_leaves_and_only_once_it_is_done():
    transit, first, second = Transit(), delivery(2), delivery(1)
    transit.add(first)
    transit.add(second)
    assert transit.batches() == 3 and transit.oldest() is first
    second.sent.ack()
    assert transit.take_done() is None  # a later acknowledgement waits for the earlier one
    first.sent.ack()
    assert transit.take_done() is first and transit.take_done() is second and not transit


def test_abandon_releases_every_delivery_and_empties_the_queue():
    transit, sends = Transit(), [delivery(1), delivery(1)]
    for d in sends:
        transit.add(d)
    transit.abandon()
    assert all(d.sent.abandoned for d in sends) and transit.batches() == 0 and transit.oldest() is None
