"""q= over real HTTP: the list, the parse endpoint, exports, the live stream and routing rules all
answer with the same captures, and a bad query is a 400 saying where it is wrong."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import Settings
from tests.conftest import Client, load_object, wait_until, with_settings
from tests.test_api import send_all_hooks
from tests.test_proxy import inspector_with, write_rules
from tests.test_stream import open_stream

QUERIES = [
    "hook:pre",
    "hook:response status:3xx",
    "kind:event or hook:auth",
    "!kind:event h:Authorization",
    "tier-gold",
    'body:"sku"',
    "path:/orders-api/v1/orders/1234",
    "(hook:post or hook:postkeyauth) -method:get",
    "dur:>=0ms api:b84f*",
]


async def ids(http: httpx.AsyncClient, q: str) -> list[int]:
    response = await http.get("/api/captures", params={"q": q, "after": 0})
    assert response.status_code == 200, response.text
    return [c["id"] for c in response.json()["items"]]


@pytest.mark.parametrize("q", QUERIES)
async def test_export_has_exactly_the_listed_captures(client: Client, http: httpx.AsyncClient, q: str) -> None:
    await send_all_hooks(client)
    listed = await ids(http, q)
    assert listed, f"{q!r} should match something in the fixtures"
    exported = (await http.get("/api/export", params={"q": q})).json()["captures"]
    assert [r["id"] for r in exported] == listed
    assert len(listed) < 7 or q.startswith("dur")  # the query did filter


async def test_list_pages_through_filtered_results(client: Client, http: httpx.AsyncClient) -> None:
    pre = load_object("pre.json")
    auth = load_object("custom-key-check.json")
    for _ in range(12):
        await client.dispatch(pre)
        await client.dispatch(auth)
    first = (await http.get("/api/captures", params={"q": "hook:pre", "limit": 5})).json()
    assert [c["id"] for c in first["items"]] == [23, 21, 19, 17, 15] and first["next_before"] == 15
    second = (await http.get("/api/captures", params={"q": "hook:pre", "limit": 5, "before": 15})).json()
    assert [c["id"] for c in second["items"]] == [13, 11, 9, 7, 5]


async def test_shorthand_parameters_are_the_same_terms(client: Client, http: httpx.AsyncClient) -> None:
    await send_all_hooks(client)
    by_param = (await http.get("/api/captures", params={"hook_type": "Response", "after": 0})).json()["items"]
    assert [c["id"] for c in by_param] == await ids(http, "hook:response")
    both = (await http.get("/api/captures", params={"q": "status:301", "hook_type": "Response"})).json()["items"]
    assert [c["hook_name"] for c in both] == ["MyResponsePlugin"]


@pytest.mark.parametrize(
    ("q", "position", "expected"),
    [
        ("status:4xx and (hook:pre", 24, "')'"),
        ("status:banana", 7, "a number, a comparison (>100) or a range (200-299)"),
        ("hook:pre or", 11, "a term"),
        ("stauts:500", 0, "a field such as 'status' (quote text to search it)"),
    ],
)
async def test_bad_queries_are_400_with_the_position(
    http: httpx.AsyncClient, q: str, position: int, expected: str
) -> None:
    for path in ("/api/captures", "/api/export", "/api/query/parse", "/api/stream"):
        response = await http.get(path, params={"q": q})
        assert response.status_code == 400, (path, response.text)
        body = response.json()
        assert body["query_error"]["position"] == position and body["query_error"]["expected"] == expected
        assert body["detail"].startswith(f"invalid query: at {position}: ")


async def test_parse_endpoint_returns_the_tree(http: httpx.AsyncClient) -> None:
    body = (await http.get("/api/query/parse", params={"q": "hook:pre !modified"})).json()
    assert body["q"] == "hook:pre !modified"
    assert body["ast"]["op"] == "and"
    first, second = body["ast"]["items"]
    assert (first["field"], first["start"], first["end"]) == ("hook", 0, 8)
    assert second == {"op": "not", "item": {"op": "flag", "flag": "modified", "start": 10, "end": 18}}
    assert (await http.get("/api/query/parse")).json() == {"q": "", "ast": None}


async def test_slow_regex_is_a_400_and_the_server_keeps_answering(client: Client, http: httpx.AsyncClient) -> None:
    obj = load_object("post-json-body.json")
    obj.request.raw_body = b"a" * 20_000 + b"!"
    await client.dispatch(obj)
    response = await http.get("/api/captures", params={"q": "body:/(a|aa)+$/"})
    assert response.status_code == 400 and "took too long" in response.json()["detail"]
    assert await client.dispatch(obj) == obj
    assert (await http.get("/api/stats")).json()["count"] == 2


async def test_stream_sends_only_matching_captures(client: Client, http: httpx.AsyncClient) -> None:
    await client.dispatch(load_object("pre.json"))
    await client.dispatch(load_object("custom-key-check.json"))
    async with open_stream(http, after=0, q="hook:auth") as stream:
        assert stream.capture_ids() == [2]  # caught up from the buffer, filtered
        await client.dispatch(load_object("pre.json"))
        await client.dispatch(load_object("custom-key-check.json"))
        await client.dispatch(load_object("pre.json"))
        await client.dispatch(load_object("custom-key-check.json"))
        assert await stream.wait_for_ids(3) == [2, 4, 6]
        assert not stream.named("gap")  # skipped captures are not missed ones
        assert [c["hook_type"] for c in stream.summaries()] == ["CustomKeyCheck"] * 3


class TestRedacted:
    @pytest.fixture
    def settings(self) -> Settings:
        return with_settings(redact=True)()

    async def test_search_never_finds_a_redacted_value(self, client: Client, http: httpx.AsyncClient) -> None:
        auth = load_object("custom-key-check.json")
        await client.dispatch(auth)
        secret = auth.request.headers["Authorization"]
        assert await ids(http, "h:Authorization") == [1]
        assert await ids(http, secret.split(".")[1]) == []
        assert await ids(http, f"h:Authorization=/{secret[:6]}/") == []
        assert await ids(http, "h:Authorization=redacted") == [1]  # what the page shows is what is searched


async def test_rules_route_by_query(tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "rules.yaml", {
        "rules": [
            {"name": "tagged", "match": {"query": "hook:pre h:X-Request-Id=7f3c*"},
             "mock": {"set_headers": {"X-Routed": "by-query"}}},
            {"name": "json-bodies", "match": {"query": 'body:"sku" or h:content-type=/json/', "hook_type": "Post"},
             "mock": {"set_headers": {"X-Routed": "json"}}},
        ],
    })  # fmt: skip
    async with inspector_with(rules_file=str(rules)) as (_inspector, client, http):
        pre = await client.dispatch(load_object("pre.json"))
        assert pre.request.set_headers["X-Routed"] == "by-query"
        post = await client.dispatch(load_object("post-json-body.json"))
        assert post.request.set_headers["X-Routed"] == "json"
        other = load_object("pre.json")
        other.request.headers["X-Request-Id"] = "something-else"
        assert await client.dispatch(other) == other  # no rule: echo
        summaries = (await http.get("/api/captures", params={"after": 0})).json()["items"]
        assert [c["rule"] for c in summaries] == ["tagged", "json-bodies", "default"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("modified", "modified is not known before the call is answered"),
        ("hook:pre (api:x", "'(' at 9 is not closed"),
        ("some words", "free text cannot be matched here"),
    ],
)
def test_rules_with_bad_queries_are_refused(tmp_path: Path, query: str, message: str) -> None:
    from app.proxy.rules import RulesError, load_rules

    with pytest.raises(RulesError, match=r"rule #1: match\.query: at ") as caught:
        load_rules(write_rules(tmp_path / "rules.yaml", {"rules": [{"match": {"query": query}, "action": "echo"}]}))
    assert message in str(caught.value)


@pytest.fixture
def view_threads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The thread each search view is built on. The spy only notes it; the real build runs."""
    import app.query.matcher as matcher
    import app.query.search as search

    threads: list[int] = []
    real_build = search.build_view

    def spy(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        return real_build(*args, **kwargs)

    monkeypatch.setattr(search, "build_view", spy)
    monkeypatch.setattr(matcher, "build_view", spy)
    return threads


async def test_a_large_capture_is_searched_from_a_view_built_off_the_event_loop(
    client: Client, http: httpx.AsyncClient, view_threads: list[int]
) -> None:
    # Decoding and lower-casing a capture of tens of megabytes takes seconds: on the loop it would
    # stall the gateway's calls. The spy only notes which thread builds a view; the real build runs.
    small, large = load_object("pre.json"), load_object("pre.json")
    large.request.raw_body = b"filler " * 100_000 + b"needle"
    await client.dispatch(small)
    await client.dispatch(large)
    response = await http.get("/api/captures", params={"q": "needle"})
    assert [c["id"] for c in response.json()["items"]] == [2]
    assert len(view_threads) == 1, "one view built: the small capture is ruled out by its bytes"
    assert view_threads[0] != threading.get_ident(), "the large capture's view was built on the loop"
    # Kept for the next search: not built again.
    assert [c["id"] for c in (await http.get("/api/captures", params={"q": "needle"})).json()["items"]] == [2]
    assert len(view_threads) == 1


async def test_a_filtered_stream_searches_a_large_capture_from_a_view_built_off_the_event_loop(
    client: Client, http: httpx.AsyncClient, view_threads: list[int]
) -> None:
    # As the list: both the catch-up from the store and the live batches build a large view in a thread.
    large = load_object("pre.json")
    large.request.raw_body = b"filler " * 100_000 + b"needle"
    await client.dispatch(large)  # caught up from the store
    async with open_stream(http, after=0, q="needle") as stream:
        assert stream.capture_ids() == [1]
        large.request.raw_body += b" again"
        await client.dispatch(large)  # live
        await wait_until(lambda: stream.capture_ids() == [1, 2], what="the live capture")
    assert len(view_threads) == 2
    assert threading.get_ident() not in view_threads, "a large capture's view was built on the loop"
