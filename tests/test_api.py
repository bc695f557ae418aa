"""The JSON API over real HTTP: list, filter, page, detail with decoded bodies, clear, stats."""

from __future__ import annotations

import base64
import gzip
import json
import re
from pathlib import Path

import httpx
import pytest
from google.protobuf import json_format

from app.server import Inspector
from protogen import coprocess_object_pb2 as pb
from tests.conftest import HOOK_PAYLOADS, Client, load_event, load_object


async def send_all_hooks(client: Client) -> None:
    for payload in HOOK_PAYLOADS:
        await client.dispatch(load_object(payload))
    await client.event_bytes(load_event("event-auth-failure.json").SerializeToString())


async def test_list_newest_first_with_summary_fields(client: Client, http: httpx.AsyncClient) -> None:
    await send_all_hooks(client)
    body = (await http.get("/api/captures")).json()
    items = body["items"]
    assert [i["id"] for i in items] == list(range(7, 0, -1))
    assert body["last_id"] == 7 and body["next_before"] is None
    pre = items[-1]
    assert pre["kind"] == "dispatch"
    assert (pre["hook_type"], pre["hook_name"], pre["method"]) == ("Pre", "MyPreHook", "GET")
    assert pre["path"] == "/orders-api/v1/orders?status=open&limit=20"
    assert pre["size"] == len(load_object("pre.json").SerializeToString())
    assert items[0]["kind"] == "event" and items[0]["hook_type"] == "AuthFailure"


@pytest.mark.parametrize(
    ("query", "expected_hook_names"),
    [
        ({"kind": "event"}, ["my_event_handler"]),
        ({"hook_type": "Response"}, ["MyResponsePlugin", "MyResponseHook"]),
        ({"hook_type": "response"}, ["MyResponsePlugin", "MyResponseHook"]),
        ({"hook_name": "MyAuthCheck"}, ["MyAuthCheck"]),
        ({"api_id": "ce6528c0af7b43206b9cf736a5e5d1b4"}, ["MyResponsePlugin"]),
        ({"method": "post"}, ["MyPostHook"]),
        ({"status": 301}, ["MyResponsePlugin"]),
        ({"q": "tier-gold"}, ["MyPostHook", "MyPostKeyAuthHook"]),  # in the session, i.e. the wire bytes
        ({"q": "myprehook"}, ["MyPreHook"]),  # summary fields match case-insensitively
        ({"kind": "dispatch", "hook_type": "Pre", "q": "nothing-like-this"}, []),
    ],
)
async def test_filters(
    client: Client, http: httpx.AsyncClient, query: dict[str, str], expected_hook_names: list[str]
) -> None:
    await send_all_hooks(client)
    items = (await http.get("/api/captures", params=query)).json()["items"]
    assert [i["hook_name"] for i in items] == expected_hook_names


async def test_pagination_by_id(client: Client, http: httpx.AsyncClient) -> None:
    obj = load_object("pre.json")
    for _ in range(25):
        await client.dispatch(obj)
    first = (await http.get("/api/captures", params={"limit": 10})).json()
    assert [i["id"] for i in first["items"]] == list(range(25, 15, -1)) and first["next_before"] == 16
    second = (await http.get("/api/captures", params={"limit": 10, "before": 16})).json()
    assert [i["id"] for i in second["items"]] == list(range(15, 5, -1))
    third = (await http.get("/api/captures", params={"limit": 10, "before": second["next_before"]})).json()
    assert [i["id"] for i in third["items"]] == list(range(5, 0, -1)) and third["next_before"] is None
    forward = (await http.get("/api/captures", params={"limit": 3, "after": 20})).json()
    assert [i["id"] for i in forward["items"]] == [21, 22, 23] and forward["next_after"] == 23


async def test_ids_only_answer_matches_the_summaries(client: Client, http: httpx.AsyncClient) -> None:
    await send_all_hooks(client)
    for params in ({}, {"q": "hook:response"}, {"limit": 2, "after": 1}, {"limit": 3, "before": 6}):
        full = (await http.get("/api/captures", params=params)).json()
        ids = (await http.get("/api/captures", params={**params, "fields": "id"})).json()
        assert ids["items"] == [i["id"] for i in full["items"]]
        assert {k: v for k, v in ids.items() if k != "items"} == {k: v for k, v in full.items() if k != "items"}
    assert len((await http.get("/api/captures", params={"q": "hook:response", "fields": "id"})).json()["items"]) == 2
    bad = await http.get("/api/captures", params={"fields": "everything"})
    assert bad.status_code == 422 and "detail" in bad.json()


async def test_detail_is_protobuf_json_of_what_was_sent(client: Client, http: httpx.AsyncClient) -> None:
    for payload in HOOK_PAYLOADS:
        obj = load_object(payload)
        await client.dispatch(obj)
        detail = (await http.get("/api/captures/" + str((await http.get("/api/captures")).json()["last_id"]))).json()
        assert json_format.ParseDict(detail["request"], pb.Object()) == obj
        assert detail["request"]["hookName"] == obj.hook_name  # camelCase like MessageToJson
        assert detail["echo"] is True and detail["reply"] is None
        assert detail["received_at_iso"].endswith("Z")


async def test_detail_decodes_json_gzip_and_html_bodies(client: Client, http: httpx.AsyncClient) -> None:
    for payload in ("post-json-body.json", "response-gzip.json", "response-petstore-301.json"):
        await client.dispatch(load_object(payload))
    post = (await http.get("/api/captures/1")).json()["bodies"]["request.rawBody"]
    assert post["media_type"] == "application/json"
    assert post["json"] == {"sku": "ABC-123", "qty": 2, "note": "café ☕"}

    gz = (await http.get("/api/captures/2")).json()["bodies"]["response.rawBody"]
    raw = load_object("response-gzip.json").response.raw_body
    assert gz["encoding"] == "gzip" and gz["size"] == len(raw)
    assert gz["json"] == json.loads(gzip.decompress(raw))
    assert base64.b64decode(gz["inflated_base64"]) == gzip.decompress(raw)

    html = (await http.get("/api/captures/3")).json()["bodies"]["response.rawBody"]
    assert html["media_type"] == "text/html"
    assert html["text"].startswith("<html>") and "301 Moved Permanently" in html["text"]


async def test_detail_of_binary_and_image_bodies(client: Client, http: httpx.AsyncClient) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 20
    obj = load_object("pre.json")
    obj.request.raw_body = png
    await client.dispatch(obj)
    obj.request.raw_body = b"\x00\x01\xfe\xff"
    await client.dispatch(obj)
    assert (await http.get("/api/captures/1")).json()["bodies"]["request.rawBody"]["media_type"] == "image/png"
    binary = (await http.get("/api/captures/2")).json()["bodies"]["request.rawBody"]
    assert (binary["media_type"], binary["text"], binary["size"]) == ("application/octet-stream", None, 4)


async def test_event_detail(client: Client, http: httpx.AsyncClient) -> None:
    await client.event_bytes(load_event("event-auth-failure.json").SerializeToString())
    await client.event("{not json")
    event = (await http.get("/api/captures/1")).json()["event"]
    assert event["payload"]["message"]["Type"] == "AuthFailure"
    assert event["payload_error"] is None
    assert event["originating_request"].startswith("GET /orders-api/v1/orders/1234 HTTP/1.1")
    broken = (await http.get("/api/captures/2")).json()["event"]
    assert broken["payload"] == "{not json" and "not JSON" in broken["payload_error"]


async def test_undecodable_capture_detail_has_the_raw_bytes(client: Client, http: httpx.AsyncClient) -> None:
    with pytest.raises(Exception, match="INVALID_ARGUMENT"):
        await client.dispatch_bytes(b"\xff\xfe garbage")
    detail = (await http.get("/api/captures/1")).json()
    assert detail["request"] is None and detail["error"]
    assert base64.b64decode(detail["request_base64"]) == b"\xff\xfe garbage"


async def test_unknown_capture_is_a_json_404(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/captures/99")
    assert response.status_code == 404
    assert "not in the buffer" in response.json()["detail"]


@pytest.mark.parametrize(
    "query", [{"limit": 0}, {"limit": "many"}, {"before": -1}, {"kind": "other"}, {"status": "x"}, {"modified": "?"}]
)
async def test_bad_query_parameters_are_422_with_a_message(http: httpx.AsyncClient, query: dict[str, str]) -> None:
    response = await http.get("/api/captures", params=query)
    assert response.status_code == 422
    assert response.json()["detail"].startswith("invalid request:")


async def test_before_and_after_together_is_400(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/captures", params={"before": 5, "after": 1})
    assert response.status_code == 400 and "either" in response.json()["detail"]


async def test_clear_and_stats(inspector: Inspector, client: Client, http: httpx.AsyncClient) -> None:
    await send_all_hooks(client)
    stats = (await http.get("/api/stats")).json()
    assert (stats["count"], stats["total"], stats["evicted"]) == (7, 7, 0)
    assert stats["bytes"] == sum(c.size for c in inspector.store.oldest_first())
    assert stats["grpc_port"] == inspector.grpc_port and stats["uptime_seconds"] >= 0
    assert (await http.delete("/api/captures")).json() == {"cleared": 7, "last_id": 7}
    assert (await http.get("/api/captures")).json()["items"] == []
    await client.dispatch(load_object("pre.json"))
    assert [i["id"] for i in (await http.get("/api/captures")).json()["items"]] == [8]


async def test_page_and_security_headers(http: httpx.AsyncClient) -> None:
    page = await http.get("/")
    assert page.status_code == 200 and "Tyk Inspector" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert (await http.get("/static/app.js")).status_code == 200


STATIC = Path(__file__).resolve().parent.parent / "app" / "static"


def page_modules() -> list[str]:
    """The modules app.js imports: every other .js in static."""
    return sorted(p.name for p in STATIC.glob("*.js") if p.name != "app.js")


async def test_page_head_starts_the_first_requests(http: httpx.AsyncClient) -> None:
    # The page's first requests are announced in its head: every module it imports (fetched side
    # by side) and the list and stats app.js asks for, which are only reused if the URLs are the same.
    page = (await http.get("/")).text
    modules = page_modules()
    assert len(modules) > 10
    preloaded = re.findall(r'<link rel="modulepreload" href="/static/([^"]+)">', page)
    assert preloaded == modules
    for name in preloaded:
        assert (await http.get(f"/static/{name}")).status_code == 200
    fetched = re.findall(r'<link rel="preload" href="([^"]+)" as="fetch" crossorigin="anonymous">', page)
    assert fetched == ["/api/captures?limit=10000", "/api/stats"]
    for url in fetched:
        assert (await http.get(url)).status_code == 200
