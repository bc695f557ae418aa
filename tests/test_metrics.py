"""GET /metrics: Prometheus text from a real inspector, parsed by prometheus-client's own parser."""

from __future__ import annotations

import json
from dataclasses import replace

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from app.metrics import MAX_LABEL_CHARS, MAX_LABEL_VALUES
from app.server import Inspector
from tests.conftest import TEST_SETTINGS, Client, load_object
from tests.plugins import header_plugin, plugin_server
from tests.test_stream import open_stream


def samples(text: str) -> list[Sample]:
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def value(text: str, name: str, **labels: str) -> float:
    found = [s.value for s in samples(text) if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, f"{name} {labels}: {found}"
    return found[0]


async def scrape(http: httpx.AsyncClient, **headers: str) -> str:
    response = await http.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_calls_are_counted_by_hook_api_kind_answer_and_status(
    inspector: Inspector, client: Client, http: httpx.AsyncClient
) -> None:
    pre = load_object("pre.json")
    for _ in range(3):
        await client.dispatch(pre)
    await client.event('{"event": "AuthFailure"}')
    with pytest.raises(grpc.aio.AioRpcError):
        await client.dispatch_bytes(b"\xff not an Object")
    async with open_stream(http):
        text = await scrape(http)

    api_id = pre.spec["APIID"]
    labels = {"kind": "dispatch", "hook_type": "Pre", "api_id": api_id, "answered_by": "echo", "grpc_status": "OK"}
    assert value(text, "tyk_inspector_calls_total", **labels) == 3
    assert value(text, "tyk_inspector_calls_total", kind="event", grpc_status="OK") == 1
    assert value(text, "tyk_inspector_calls_total", kind="dispatch", grpc_status="INVALID_ARGUMENT") == 1
    assert value(text, "tyk_inspector_dispatch_duration_seconds_count") == 5
    assert value(text, "tyk_inspector_dispatch_duration_seconds_bucket", le="+Inf") == 5
    assert value(text, "tyk_inspector_upstream_duration_seconds_count") == 0
    assert value(text, "tyk_inspector_captures_stored_total") == 5
    assert value(text, "tyk_inspector_store_items") == 5
    assert value(text, "tyk_inspector_store_bytes") == inspector.store.stats().bytes
    assert value(text, "tyk_inspector_captures_evicted_total") == 0
    assert value(text, "tyk_inspector_captures_dropped_total") == 0
    assert value(text, "tyk_inspector_sse_clients") == 1


async def test_upstream_latency_is_a_histogram() -> None:
    async with plugin_server(header_plugin) as plugin:
        inspector = Inspector(replace(TEST_SETTINGS, upstream=plugin.target))
        await inspector.start()
        try:
            async with (
                grpc.aio.insecure_channel(f"127.0.0.1:{inspector.grpc_port}") as channel,
                httpx.AsyncClient(base_url=inspector.http_url) as http,
            ):
                for _ in range(4):
                    await Client(channel).dispatch(load_object("pre.json"))
                text = await scrape(http)
        finally:
            await inspector.stop()
    assert value(text, "tyk_inspector_calls_total", answered_by="upstream", grpc_status="OK") == 4
    assert value(text, "tyk_inspector_upstream_duration_seconds_count") == 4
    assert value(text, "tyk_inspector_upstream_duration_seconds_sum") > 0


async def test_metrics_sit_behind_the_access_guard() -> None:
    token = "a-token-of-sixteen-or-more"
    inspector = Inspector(replace(TEST_SETTINGS, auth_token=token))
    await inspector.start()
    try:
        async with httpx.AsyncClient(base_url=inspector.http_url) as http:
            refused = await http.get("/metrics")
            assert refused.status_code == 401 and "token" in refused.json()["detail"]
            text = await scrape(http, Authorization=f"Bearer {token}")
    finally:
        await inspector.stop()
    assert value(text, "tyk_inspector_store_items") == 0


async def test_api_ids_beyond_the_series_bound_are_counted_as_other(
    inspector: Inspector, client: Client, http: httpx.AsyncClient
) -> None:
    inspector.calls.max_series = 3
    for n in range(6):
        obj = load_object("pre.json")
        obj.spec["APIID"] = f"api-{n}"
        await client.dispatch(obj)
    text = await scrape(http)
    counted = {s.labels["api_id"]: s.value for s in samples(text) if s.name == "tyk_inspector_calls_total"}
    assert counted == {"api-0": 1, "api-1": 1, "api-2": 1, "other": 3}


async def test_every_label_has_a_bounded_number_of_values(
    inspector: Inspector, client: Client, http: httpx.AsyncClient
) -> None:
    most = MAX_LABEL_VALUES["hook_type"]
    for n in range(most + 40):  # hook type numbers Tyk does not have, and made-up event types
        obj = load_object("pre.json")
        obj.hook_type = 100 + n  # type: ignore[assignment]
        await client.dispatch(obj)
        await client.event(json.dumps({"message": {"Type": f"NoSuchEvent{n}"}}))
    text = await scrape(http)
    calls = [s for s in samples(text) if s.name == "tyk_inspector_calls_total"]
    hook_types = {s.labels["hook_type"] for s in calls}
    assert len(hook_types) <= most + 1 and "other" in hook_types
    assert sum(s.value for s in calls) == 2 * (most + 40)  # every call still counted


async def test_long_label_values_are_cut(inspector: Inspector, client: Client, http: httpx.AsyncClient) -> None:
    for n in range(20):
        obj = load_object("pre.json")
        obj.spec["APIID"] = f"{n}-" + "x" * 100_000
        await client.dispatch(obj)
    text = await scrape(http)
    assert len(text) < 40_000  # 20 labels of 100 KB made a 2 MB scrape
    api_ids = [s.labels["api_id"] for s in samples(text) if s.name == "tyk_inspector_calls_total"]
    assert len(api_ids) == 20 and all(len(a) == MAX_LABEL_CHARS and a.endswith("…") for a in api_ids)
