"""The broadcaster's batching window: short while captures trickle in, longer in a flood."""

from __future__ import annotations

import asyncio

from app.capture.broadcast import Batch, Broadcaster, Subscription
from app.capture.record import Capture

WINDOW = 0.02
FLOOD_WINDOW = 0.3
FLOOD_RATE = 10  # captures a second; 50 in one 20 ms window is 2,500 a second


class Feed:
    """Captures with consecutive ids, published as a Dispatch handler would."""

    def __init__(self, broadcaster: Broadcaster) -> None:
        self.broadcaster = broadcaster
        self.last_id = 0

    def publish(self, count: int) -> None:
        for _ in range(count):
            self.last_id += 1
            capture = Capture(kind="dispatch", request=b"", reply=b"")
            capture.id = self.last_id
            self.broadcaster.publish(capture)


async def next_batch(subscription: Subscription) -> tuple[Batch, float]:
    """The next batch and when, by the loop's clock, it was handed out."""
    message = await asyncio.wait_for(subscription.get(), 10)
    assert isinstance(message, Batch)
    return message, asyncio.get_running_loop().time()


async def test_a_flood_lengthens_the_window_and_a_trickle_shortens_it_again() -> None:
    broadcaster = Broadcaster(1000, WINDOW, flood_rate=FLOOD_RATE, flood_batch_seconds=FLOOD_WINDOW)
    subscription = broadcaster.subscribe()
    feed = Feed(broadcaster)

    feed.publish(1)  # after a quiet spell: out at once, and the window stays short
    first, first_at = await next_batch(subscription)
    assert len(first) == 1 and broadcaster.window == WINDOW

    feed.publish(50)  # they wait for the window after the first batch: a flood
    flood, flood_at = await next_batch(subscription)
    assert len(flood) == 50 and flood_at - first_at >= WINDOW
    assert broadcaster.window == FLOOD_WINDOW

    feed.publish(1)  # waits for the long window; one capture in it is a trickle again
    after, after_at = await next_batch(subscription)
    assert after.last_id == 52 and after_at - flood_at >= FLOOD_WINDOW
    assert broadcaster.window == WINDOW


async def test_without_a_flood_rate_the_window_never_changes() -> None:
    broadcaster = Broadcaster(1000, WINDOW)
    subscription = broadcaster.subscribe()
    feed = Feed(broadcaster)
    for count in (1, 500, 1):
        feed.publish(count)
        batch, _ = await next_batch(subscription)
        assert len(batch) == count and broadcaster.window == WINDOW
