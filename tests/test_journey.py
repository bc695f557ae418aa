"""Request journeys: correlation by tag, trace id, request id and the heuristic; events; eviction;
the API over real HTTP; --tag-requests."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from app.capture.record import Capture, summarize_event, summarize_object
from app.cli import build_parser, settings_from_args
from app.config import Settings
from app.journeys.journey import TAG_HEADER, WINDOW_US, JourneyIndex
from app.redaction.redact import REDACTED, Redactor
from app.store.buffer import RingBuffer
from protogen import coprocess_common_pb2 as common
from protogen import coprocess_object_pb2 as pb
from tests.conftest import Client, load_object, with_settings

HOOKS = [("Pre", common.Pre), ("CustomKeyCheck", common.CustomKeyCheck), ("PostKeyAuth", common.PostKeyAuth),
         ("Post", common.Post), ("Response", common.Response)]  # fmt: skip
T0 = 1_700_000_000_000_000


def hook_object(hook: int, path: str = "/orders", request_id: str | None = None, api: str = "api-1") -> pb.Object:
    name = common.HookType.Name(hook)
    obj = pb.Object(hook_type=name, hook_name=f"{name}Hook")
    obj.request.url = path
    obj.request.method = "GET"
    obj.request.headers["Host"] = "gw.example.com"
    if request_id:
        obj.request.headers["X-Request-Id"] = request_id
    obj.request.return_overrides.response_code = -1
    obj.spec["APIID"] = api
    if hook == common.Response:
        obj.response.status_code = 200
    return obj


def capture(obj: pb.Object, at_us: int, metadata: tuple[tuple[str, str], ...] = (), reply: pb.Object | None = None,
            peer: str = "ipv4:127.0.0.1:5000") -> Capture:  # fmt: skip
    data = obj.SerializeToString()
    c = Capture(kind="dispatch", request=data, reply=data if reply is None else reply.SerializeToString(),
                received_us=at_us, metadata=metadata, peer=peer)  # fmt: skip
    summarize_object(c, obj)
    return c


def auth_failure(path: str, at_us: int, headers: dict[str, str] | None = None, api: str = "api-1") -> Capture:
    dump = f"GET {path} HTTP/1.1\r\nHost: gw.example.com\r\n"
    dump += "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items()) + "\r\n"
    payload = {
        "message": {"Type": "AuthFailure", "Meta": {"Path": path, "Key": "k",
                                                    "OriginatingRequest": base64.b64encode(dump.encode()).decode()}},
        "handler_name": "h", "spec": {"APIID": api, "OrgID": "o"},
    }  # fmt: skip
    event = pb.Event(payload=json.dumps(payload))
    c = Capture(kind="event", request=event.SerializeToString(), reply=b"", received_us=at_us)
    summarize_event(c, event)
    return c


async def index_of(*captures: Capture, store: RingBuffer | None = None) -> tuple[JourneyIndex, RingBuffer]:
    store = RingBuffer(1000, 64 * 1024 * 1024) if store is None else store
    store.add_many(captures)
    index = JourneyIndex(store)
    await index.catch_up()
    return index, store


def groups(index: JourneyIndex) -> list[list[int]]:
    return sorted(sorted(j.captures + j.events) for j in index.newest_first())


async def test_request_id_ties_every_hook_of_a_request() -> None:
    calls = [capture(hook_object(h, request_id="r-1"), T0 + i * 1000) for i, (_, h) in enumerate(HOOKS)]
    index, _ = await index_of(*calls)
    assert groups(index) == [[1, 2, 3, 4, 5]]
    journey = index.journey_of(3)
    assert journey is not None and (journey.by, journey.key, journey.confidence) == ("request-id", "r-1", "high")
    assert index.journey_id(5) == 1 and index.journey_key(5, Redactor()) == "r-1"


async def test_a_request_id_reused_by_a_retry_starts_a_new_journey() -> None:
    first = [capture(hook_object(h, request_id="same"), T0 + i) for i, h in enumerate((common.Pre, common.Response))]
    retry = [capture(hook_object(h, request_id="same"), T0 + 10 + i) for i, h in enumerate((common.Pre, common.Post))]
    index, _ = await index_of(*first, *retry)
    assert groups(index) == [[1, 2], [3, 4]]


async def test_trace_ids_separate_interleaved_requests() -> None:
    a = (("traceparent", "00-" + "a" * 32 + "-" + "1" * 16 + "-01"),)
    b = (("traceparent", "00-" + "b" * 32 + "-" + "2" * 16 + "-01"),)
    calls = [
        capture(hook_object(common.Pre), T0, a),
        capture(hook_object(common.Pre), T0 + 1, b),
        capture(hook_object(common.Post), T0 + 2, b),
        capture(hook_object(common.Post), T0 + 3, a),
    ]
    index, _ = await index_of(*calls)
    assert groups(index) == [[1, 4], [2, 3]]
    journey = index.journey_of(1)
    assert journey is not None and (journey.by, journey.key) == ("traceparent", "a" * 32)


async def test_a_request_id_set_by_the_pre_hook_reply_counts_for_the_pre_hook_too() -> None:
    pre = hook_object(common.Pre)
    reply = pb.Object()
    reply.CopyFrom(pre)
    reply.request.set_headers["X-Request-Id"] = "from-plugin"
    calls = [capture(pre, T0, reply=reply), capture(hook_object(common.Post, request_id="from-plugin"), T0 + 5)]
    index, _ = await index_of(*calls)
    assert groups(index) == [[1, 2]]


async def test_heuristic_follows_hook_order_path_and_time() -> None:
    calls = [
        capture(hook_object(common.Pre, "/a"), T0),
        capture(hook_object(common.Pre, "/b?x=1"), T0 + 1),
        capture(hook_object(common.Post, "/b?x=1"), T0 + 2),
        capture(hook_object(common.Response, "/a"), T0 + 3),
        capture(hook_object(common.Pre, "/a"), T0 + 4 + WINDOW_US),  # too late for the first /a
        capture(hook_object(common.Pre, "/a", api="api-2"), T0 + 5),  # another API
    ]
    index, _ = await index_of(*calls)
    assert groups(index) == [[1, 4], [2, 3], [5], [6]]
    journey = index.journey_of(4)
    assert journey is not None and (journey.by, journey.confidence) == ("heuristic", "medium")


async def test_heuristic_confidence_is_low_when_requests_of_one_route_overlap() -> None:
    calls = [
        capture(hook_object(common.Pre), T0),
        capture(hook_object(common.Pre), T0 + 1),
        capture(hook_object(common.Post), T0 + 2),
        capture(hook_object(common.Post), T0 + 3),
    ]
    index, _ = await index_of(*calls)
    assert groups(index) == [[1, 3], [2, 4]]  # first in, first out
    first = index.journey_of(1)
    second = index.journey_of(2)
    assert first is not None and first.confidence == "low"  # two candidates for capture 3
    assert second is not None and second.confidence == "medium"  # one left for capture 4


async def test_events_join_the_journey_of_their_request() -> None:
    calls = [
        capture(hook_object(common.Pre, "/orders?id=1", request_id="r-9"), T0),
        capture(hook_object(common.CustomKeyCheck, "/orders?id=1", request_id="r-9"), T0 + 1),
        auth_failure("/orders", T0 + 2, {"X-Request-Id": "r-9"}),
        capture(hook_object(common.Pre, "/other"), T0 + 3),
        auth_failure("/other", T0 + 4),  # no id: by API and path
        auth_failure("/nowhere", T0 + 5),  # no request seen: no journey
    ]
    index, _ = await index_of(*calls)
    first, second = index.journey_of(1), index.journey_of(4)
    assert first is not None and first.events == [3] and first.step_confidence[3] == "high"
    assert second is not None and second.events == [5] and second.step_confidence[5] == "low"
    assert index.journey_of(6) is None


async def test_evicted_captures_leave_the_index_and_clear_empties_it() -> None:
    store = RingBuffer(4, 64 * 1024 * 1024)
    index, _ = await index_of(store=store)
    for i in range(6):
        store.add(capture(hook_object(common.Pre, f"/p{i}", request_id=f"r{i}"), T0 + i))
        store.add(capture(hook_object(common.Post, f"/p{i}", request_id=f"r{i}"), T0 + i))
    await index.catch_up()
    assert groups(index) == [[9, 10], [11, 12]]
    assert index.journey_of(1) is None and len(index._by_capture) == 4
    store.clear()
    await index.catch_up()
    assert len(index) == 0 and not index._by_capture and not index._by_key
    store.add(capture(hook_object(common.Pre, request_id="again"), T0 + 100))
    await index.catch_up()
    assert groups(index) == [[13]]


# --- over HTTP ---------------------------------------------------------------------------------------


async def send_request(client: Client, request_id: str, hooks: list[int] | None = None) -> None:
    for hook in hooks or [h for _, h in HOOKS]:
        await client.dispatch(hook_object(hook, f"/orders/{request_id}", request_id=request_id))


async def test_journey_api(client: Client, http: httpx.AsyncClient) -> None:
    await send_request(client, "one")
    await send_request(client, "two", [common.Pre, common.CustomKeyCheck])
    journey = (await http.get("/api/captures/3/journey")).json()
    assert journey["id"] == 1 and journey["capture_ids"] == [1, 2, 3, 4, 5]
    assert (journey["by"], journey["key"], journey["confidence"]) == ("request-id", "one", "high")
    steps = journey["steps"]
    assert [s["hook_type"] for s in steps] == ["Pre", "CustomKeyCheck", "PostKeyAuth", "Post", "Response"]
    assert all(s["duration_ms"] >= 0 and s["confidence"] == "high" for s in steps)
    assert steps[0]["outcome_status"] == "continue" and steps[-1]["outcome_status"] == 200
    assert journey["status"] == 200
    rows = (await http.get("/api/journeys")).json()
    assert [r["capture_ids"] for r in rows["items"]] == [[6, 7], [1, 2, 3, 4, 5]] and rows["count"] == 2
    assert "steps" not in rows["items"][0]
    only = (await http.get("/api/journeys", params={"q": "path:/orders/two", "steps": "true"})).json()["items"]
    assert [r["id"] for r in only] == [6] and len(only[0]["steps"]) == 2
    # The auth hook without a session refuses the request: the journey ends with 403.
    assert only[0]["status"] == 403
    ids = [c["id"] for c in (await http.get("/api/captures", params={"q": "journey:4", "after": 0})).json()["items"]]
    assert ids == [1, 2, 3, 4, 5]
    keyed = (await http.get("/api/captures", params={"q": "journey:two", "after": 0})).json()["items"]
    assert [c["id"] for c in keyed] == [6, 7]
    assert (await http.get("/api/captures/99/journey")).status_code == 404


async def test_an_event_without_a_request_has_no_journey(client: Client, http: httpx.AsyncClient) -> None:
    await client.event_bytes(auth_failure("/x", T0).request)
    response = await http.get("/api/captures/1/journey")
    assert response.status_code == 404 and "no journey" in response.json()["detail"]


class TestTagRequests:
    @pytest.fixture
    def settings(self) -> Settings:
        return with_settings(tag_requests=True)()

    async def test_the_pre_reply_carries_the_tag_and_later_hooks_join_by_it(
        self, client: Client, http: httpx.AsyncClient
    ) -> None:
        pre = hook_object(common.Pre)
        reply = await client.dispatch(pre)
        tag = reply.request.set_headers[TAG_HEADER]
        assert len(tag) == 16 and reply.request.headers == pre.request.headers
        # The gateway applies set_headers: every later hook sees the tag in request.headers.
        post = hook_object(common.Post)
        post.request.headers[TAG_HEADER] = tag
        assert await client.dispatch(post) == post  # only Pre replies are tagged
        other = await client.dispatch(hook_object(common.Pre))  # another request, another tag
        assert other.request.set_headers[TAG_HEADER] != tag
        journey = (await http.get("/api/captures/2/journey")).json()
        assert (journey["by"], journey["key"], journey["capture_ids"]) == ("tag", tag, [1, 2])
        summary = (await http.get("/api/captures", params={"q": "id:1"})).json()["items"][0]
        assert summary["modified"]  # the traffic changed, and the list says so

    async def test_a_second_pre_hook_keeps_the_first_tag(self, client: Client) -> None:
        pre = hook_object(common.Pre)
        pre.request.headers[TAG_HEADER] = "already"
        assert await client.dispatch(pre) == pre


async def test_no_tag_by_default(client: Client) -> None:
    pre = load_object("pre.json")
    assert await client.dispatch(pre) == pre


@pytest.mark.parametrize(
    ("argv", "environ", "expected"),
    [([], {}, False), (["--tag-requests"], {}, True), ([], {"TYK_INSPECTOR_TAG_REQUESTS": "1"}, True)],
)
def test_tag_requests_setting(argv: list[str], environ: dict[str, str], expected: bool) -> None:
    parser, _ = build_parser(environ)
    settings: Any = settings_from_args(parser.parse_args(["serve", *argv]))
    assert settings.tag_requests is expected


async def test_a_capture_with_no_journey_is_a_404_that_says_why(client: Client, http: httpx.AsyncClient) -> None:
    await client.dispatch_bytes(b"", wait_for_ready=True)  # an empty Object: no hook type
    await client.event("not json")
    dispatch, event = (await http.get("/api/captures/1/journey")), (await http.get("/api/captures/2/journey"))
    assert dispatch.status_code == event.status_code == 404
    assert "not a decodable hook call" in dispatch.json()["detail"]
    assert "an event with no request seen" in event.json()["detail"]


# --- a correlation id the user marked sensitive --------------------------------------------------


async def send_hooks(client: Client, request_id: str, hooks: list[int], **kwargs: Any) -> None:
    for hook in hooks:
        await client.dispatch(hook_object(hook, "/orders", request_id=request_id), **kwargs)


async def matching_ids(http: httpx.AsyncClient, q: str) -> list[int]:
    response = await http.get("/api/captures", params={"q": q, "after": 0})
    assert response.status_code == 200, response.text
    return [c["id"] for c in response.json()["items"]]


class TestARedactedRequestId:
    @pytest.fixture
    def settings(self) -> Settings:
        return with_settings(redact=True, redact_headers=("X-Request-Id",))()

    async def test_the_key_is_shown_redacted_and_journey_search_does_not_confirm_it(
        self, client: Client, http: httpx.AsyncClient
    ) -> None:
        await send_hooks(client, "rid-secret-one", [h for _, h in HOOKS])
        await send_hooks(client, "rid-secret-two", [common.Pre, common.CustomKeyCheck])
        await client.event_bytes(auth_failure("/orders", T0, {"X-Request-Id": "rid-secret-two"}).request)
        listed = await http.get("/api/journeys", params={"steps": "true"})
        rows = listed.json()["items"]
        # Grouping still follows the real values: two requests, the event with the second.
        assert [(r["capture_ids"], r["event_ids"]) for r in rows] == [([6, 7], [8]), ([1, 2, 3, 4, 5], [])]
        assert [(r["by"], r["key"]) for r in rows] == [("request-id", REDACTED)] * 2
        one = await http.get("/api/captures/3/journey")
        assert one.json()["key"] == REDACTED
        har = await http.get("/api/export", params={"format": "har"})
        assert har.status_code == 200
        for response in (listed, one, har):
            assert "rid-secret" not in response.text
        # journey: matches the key as shown: the real value (or a pattern of it) finds nothing.
        for q in ("journey:rid-secret-one", "journey:rid-secret*", "journey:/^rid-secret-one$/"):
            assert await matching_ids(http, q) == []
            assert (await http.get("/api/journeys", params={"q": q})).json()["items"] == []
        assert await matching_ids(http, f'journey:"{REDACTED}"') == [1, 2, 3, 4, 5, 6, 7, 8]
        assert await matching_ids(http, "journey:6") == [6, 7, 8]  # by capture id, as before

    async def test_a_trace_id_stays_shown_when_only_the_request_id_is_redacted(
        self, client: Client, http: httpx.AsyncClient
    ) -> None:
        trace = "c" * 32
        metadata = (("traceparent", f"00-{trace}-{'1' * 16}-01"),)
        for hook in (common.Pre, common.Post):
            await client.dispatch(hook_object(hook, "/orders"), metadata=metadata)
        rows = (await http.get("/api/journeys")).json()["items"]
        assert [(r["by"], r["key"], r["capture_ids"]) for r in rows] == [("traceparent", trace, [1, 2])]


class TestTraceparentRedacted:
    @pytest.fixture
    def settings(self) -> Settings:
        return with_settings(redact=True, redact_headers=("traceparent",))()

    async def test_the_trace_id_key_is_redacted(self, client: Client, http: httpx.AsyncClient) -> None:
        trace = "c" * 32
        metadata = (("traceparent", f"00-{trace}-{'1' * 16}-01"),)
        for hook in (common.Pre, common.Post):
            await client.dispatch(hook_object(hook, "/orders"), metadata=metadata)
        listed = await http.get("/api/journeys")
        assert [(r["by"], r["key"], r["capture_ids"]) for r in listed.json()["items"]] == [
            ("traceparent", REDACTED, [1, 2])
        ]
        assert trace not in listed.text
        assert await matching_ids(http, f"journey:{trace}") == []


class TestRedactionOff:
    @pytest.fixture
    def settings(self) -> Settings:
        return with_settings(redact=False, redact_headers=("X-Request-Id",))()

    async def test_no_redact_shows_and_matches_the_key(self, client: Client, http: httpx.AsyncClient) -> None:
        await send_hooks(client, "rid-visible", [common.Pre, common.Post])
        rows = (await http.get("/api/journeys")).json()["items"]
        assert [(r["key"], r["capture_ids"]) for r in rows] == [("rid-visible", [1, 2])]
        assert await matching_ids(http, "journey:rid-visible") == [1, 2]


class TestDefaultRedaction:
    @pytest.fixture
    def settings(self) -> Settings:
        return with_settings(redact=True)()  # the product's default: redaction on, no extra names

    async def test_a_request_id_that_is_not_sensitive_is_shown_and_matchable(
        self, client: Client, http: httpx.AsyncClient
    ) -> None:
        await send_hooks(client, "rid-plain-one", [common.Pre, common.Post])
        await send_hooks(client, "rid-plain-two", [common.Pre])
        rows = (await http.get("/api/journeys")).json()["items"]
        assert [(r["key"], r["capture_ids"]) for r in rows] == [("rid-plain-two", [3]), ("rid-plain-one", [1, 2])]
        assert await matching_ids(http, "journey:rid-plain-one") == [1, 2]
        assert await matching_ids(http, "journey:rid-plain-*") == [1, 2, 3]
