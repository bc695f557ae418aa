"""The broadcaster's batching window: short while captures trickle in, longer in a flood that lasts."""

from __future__ import annotations

import asyncio

from app.capture.record import Capture
from app.live.broadcast import RATE_SECONDS, Batch, Broadcaster, Subscription

WINDOW = 0.02
FLOOD_WINDOW = 0.3
FLOOD_RATE = 40  # captures a second, measured over the last RATE_SECONDS


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


async def test_a_flood_lengthens_the_window_until_the_rate_falls_again() -> None:
    broadcaster = Broadcaster(1000, WINDOW, flood_rate=FLOOD_RATE, flood_batch_seconds=FLOOD_WINDOW)
    subscription = broadcaster.subscribe()
    feed = Feed(broadcaster)

    feed.publish(30)  # after a quiet spell: out at once; 30 in the last second is no flood
    first, first_at = await next_batch(subscription)
    assert len(first) == 30 and broadcaster.window == WINDOW

    feed.publish(30)  # they wait for the window after the first batch; 60 in a second is a flood
    flood, flood_at = await next_batch(subscription)
    assert len(flood) == 30 and flood_at - first_at >= WINDOW
    assert broadcaster.window == FLOOD_WINDOW

    # A trickle now: each capture waits for the long window, until the flood is over a second old.
    previous_at = flood_at
    while broadcaster.window == FLOOD_WINDOW:
        feed.publish(1)
        batch, batch_at = await next_batch(subscription)
        assert batch.last_id == feed.last_id and batch_at - previous_at >= FLOOD_WINDOW
        assert batch_at - flood_at < RATE_SECONDS + 2 * FLOOD_WINDOW + 5, "the flood never ended"
        previous_at = batch_at
    assert previous_at - first_at >= RATE_SECONDS


async def test_a_burst_in_a_steady_stream_is_no_flood() -> None:
    broadcaster = Broadcaster(1000, WINDOW, flood_rate=FLOOD_RATE, flood_batch_seconds=FLOOD_WINDOW)
    subscription = broadcaster.subscribe()
    feed = Feed(broadcaster)
    feed.publish(1)
    await next_batch(subscription)
    # Five in one 20 ms window is 250 a second for that window, but six in the last second.
    feed.publish(5)
    burst, _ = await next_batch(subscription)
    assert len(burst) == 5 and broadcaster.window == WINDOW


async def test_without_a_flood_rate_the_window_never_changes() -> None:
    broadcaster = Broadcaster(1000, WINDOW)
    subscription = broadcaster.subscribe()
    feed = Feed(broadcaster)
    for count in (1, 500, 1):
        feed.publish(count)
        batch, _ = await next_batch(subscription)
        assert len(batch) == count and broadcaster.window == WINDOW
