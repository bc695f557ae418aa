"""With --store redis://: two replicas on a real Redis share one intercept query."""

from __future__ import annotations

import asyncio

from app.server import Inspector
from tests.conftest import load_object, wait_until
from tests.redis_server import RedisServer, redis_server
from tests.test_intercept import dispatch_in_background, held_items
from tests.test_redis_store import replica, store_settings

__all__ = ["redis_server"]  # the fixture, used by name


async def test_a_query_set_on_one_replica_holds_calls_on_the_other(redis_server: RedisServer) -> None:
    async with replica(store_settings(redis_server)) as a, replica(store_settings(redis_server)) as b:
        assert (await a.http.put("/api/intercept", json={"q": "hook:Pre", "points": ["after"]})).status_code == 200

        def applied(inspector: Inspector) -> bool:
            return inspector.interceptor.query == "hook:Pre" and inspector.interceptor.points == {"after"}

        await wait_until(lambda: applied(b.inspector), what="the other replica to take the query")
        call = dispatch_in_background(b.client, load_object("pre.json"))
        [held] = await held_items(b.http)
        assert (await b.http.post(f"/api/held/{held['id']}/continue")).status_code == 200
        await asyncio.wait_for(call, 5)

        # Turning it off on the other replica turns it off on both.
        await b.http.put("/api/intercept", json={"q": "", "points": ["after"]})
        await wait_until(lambda: a.inspector.service.intercept is None, what="the first replica to turn it off")
        await asyncio.wait_for(a.client.dispatch(load_object("pre.json")), 5)


async def test_intercept_at_start_is_shared_and_a_stopping_replica_does_not_turn_it_off(
    redis_server: RedisServer,
) -> None:
    async with replica(store_settings(redis_server, intercept="hook:auth")):
        async with replica(store_settings(redis_server)) as b:
            await wait_until(lambda: b.inspector.interceptor.query == "hook:auth", what="the flag's query shared")
        # b stopped, turning intercept off for itself only: a replica started now still takes the query.
        async with replica(store_settings(redis_server)) as c:
            await wait_until(lambda: c.inspector.interceptor.query == "hook:auth", what="a new replica takes it")
