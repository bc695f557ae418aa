"""GET /api/export?format=har over real HTTP: HAR 1.2 structure, one entry per API request with the
request as the client sent it and the response it got; filters and redaction as for every export."""

from __future__ import annotations

import datetime as dt
import gzip
from typing import Any

import httpx
import pytest

from app.config import Settings
from protogen import coprocess_object_pb2 as pb
from tests.conftest import Client, load_object, with_settings

# --- a structural validator written from the HAR 1.2 spec ---------------------------------------------

NUMBER = (int, float)


def _need(obj: Any, where: str, fields: dict[str, Any], optional: dict[str, Any] | None = None) -> None:
    assert isinstance(obj, dict), f"{where} must be an object"
    for name, kind in fields.items():
        assert name in obj, f"{where}.{name} is required"
        assert isinstance(obj[name], kind) and not isinstance(obj[name], bool), f"{where}.{name} has the wrong type"
    for name, kind in (optional or {}).items():
        if name in obj:
            assert isinstance(obj[name], kind), f"{where}.{name} has the wrong type"
    for name in obj:
        assert name in fields or name in (optional or {}) or name.startswith("_"), f"{where}.{name} is not HAR 1.2"


def _pairs(items: Any, where: str) -> None:
    assert isinstance(items, list), f"{where} must be a list"
    for i, item in enumerate(items):
        _need(item, f"{where}[{i}]", {"name": str, "value": str}, {"comment": str})


def validate_har(doc: Any) -> None:
    _need(doc, "", {"log": dict})
    log = doc["log"]
    _need(log, "log", {"version": str, "creator": dict, "entries": list},
          {"browser": dict, "pages": list, "comment": str})  # fmt: skip
    assert log["version"] == "1.2"
    _need(log["creator"], "log.creator", {"name": str, "version": str}, {"comment": str})
    for i, entry in enumerate(log["entries"]):
        where = f"log.entries[{i}]"
        _need(entry, where, {"startedDateTime": str, "time": NUMBER, "request": dict, "response": dict,
                             "cache": dict, "timings": dict},
              {"pageref": str, "serverIPAddress": str, "connection": str, "comment": str})  # fmt: skip
        dt.datetime.fromisoformat(entry["startedDateTime"].replace("Z", "+00:00"))
        request = entry["request"]
        _need(request, f"{where}.request", {"method": str, "url": str, "httpVersion": str, "cookies": list,
                                            "headers": list, "queryString": list, "headersSize": int,
                                            "bodySize": int},
              {"postData": dict, "comment": str})  # fmt: skip
        _pairs(request["headers"], f"{where}.request.headers")
        _pairs(request["queryString"], f"{where}.request.queryString")
        if "postData" in request:
            _need(request["postData"], f"{where}.request.postData", {"mimeType": str},
                  {"params": list, "text": str, "comment": str})  # fmt: skip
        response = entry["response"]
        _need(response, f"{where}.response", {"status": int, "statusText": str, "httpVersion": str,
                                              "cookies": list, "headers": list, "content": dict,
                                              "redirectURL": str, "headersSize": int, "bodySize": int},
              {"comment": str})  # fmt: skip
        _pairs(response["headers"], f"{where}.response.headers")
        _need(response["content"], f"{where}.response.content", {"size": int, "mimeType": str},
              {"compression": int, "text": str, "encoding": str, "comment": str})  # fmt: skip
        timings = entry["timings"]
        _need(timings, f"{where}.timings", {"send": NUMBER, "wait": NUMBER, "receive": NUMBER},
              {"blocked": NUMBER, "dns": NUMBER, "connect": NUMBER, "ssl": NUMBER, "comment": str})  # fmt: skip
        total = sum(v for k, v in timings.items() if k != "comment" and v != -1)
        assert abs(total - entry["time"]) < 0.01, f"{where}.time must be the sum of its timings"


def test_the_validator_rejects_what_is_not_har() -> None:
    with pytest.raises(AssertionError, match="log is required"):
        validate_har({})
    bad_entry = {"log": {"version": "1.2", "creator": {"name": "x", "version": "1"},
                         "entries": [{"startedDateTime": "2026-01-01T00:00:00Z", "time": 1}]}}  # fmt: skip
    with pytest.raises(AssertionError, match="request is required"):
        validate_har(bad_entry)


# --- the export -------------------------------------------------------------------------------------


def same_request(obj: pb.Object) -> pb.Object:
    obj.request.headers["X-Request-Id"] = "req-1"
    return obj


async def har(http: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    response = await http.get("/api/export", params={"format": "har", **params})
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"].startswith('attachment; filename="tyk-inspector-')
    assert response.headers["content-disposition"].endswith('.har"')
    doc: dict[str, Any] = response.json()
    validate_har(doc)
    return doc


async def test_one_entry_per_request_with_what_the_client_sent_and_got(client: Client, http: httpx.AsyncClient) -> None:
    await client.dispatch(same_request(load_object("pre.json")))
    await client.dispatch(same_request(load_object("response-gzip.json")))
    entries = (await har(http))["log"]["entries"]
    assert len(entries) == 1
    entry = entries[0]
    request, response = entry["request"], entry["response"]
    assert request["method"] == "GET"
    assert request["url"] == "https://gw.example.com:8080/orders-api/v1/orders?status=open&limit=20"
    assert {"name": "status", "value": "open"} in request["queryString"]
    assert {"name": "User-Agent", "value": "curl/8.5.0"} in request["headers"]
    assert response["status"] == 200 and response["statusText"] == "OK"
    names = [h["name"] for h in response["headers"]]
    assert names.count("Set-Cookie") == 2  # every value of a multi-valued header
    body = gzip.decompress(load_object("response-gzip.json").response.raw_body).decode()
    assert response["content"]["text"] == body and response["content"]["mimeType"] == "application/json"
    assert response["content"]["compression"] == len(body) - response["bodySize"]
    assert entry["_tykInspector"]["capture_ids"] == [1, 2] and entry["_tykInspector"]["by"] == "request-id"


async def test_post_data_and_a_response_from_a_request_hook(client: Client, http: httpx.AsyncClient) -> None:
    post = load_object("post-json-body.json")
    post.request.return_overrides.response_code = 201
    post.request.return_overrides.response_body = '{"created": true}'
    post.request.return_overrides.headers["Content-Type"] = "application/json"
    await client.dispatch(post)
    entry = (await har(http))["log"]["entries"][0]
    assert entry["request"]["method"] == "POST"
    assert entry["request"]["postData"]["text"] == load_object("post-json-body.json").request.raw_body.decode()
    assert entry["request"]["postData"]["mimeType"].startswith("application/json")
    assert entry["response"]["status"] == 201
    assert entry["response"]["content"]["text"] == '{"created": true}'


async def test_an_auth_refusal_is_the_response(client: Client, http: httpx.AsyncClient) -> None:
    await client.dispatch(same_request(load_object("pre.json")))
    await client.dispatch(same_request(load_object("custom-key-check.json")))  # echoed: no session, refused
    entry = (await har(http))["log"]["entries"][0]
    assert entry["response"]["status"] == 403
    assert entry["_tykInspector"]["response_from"] == "CustomKeyCheck #2"


async def test_no_response_seen(client: Client, http: httpx.AsyncClient) -> None:
    await client.dispatch(load_object("pre.json"))
    entry = (await har(http))["log"]["entries"][0]
    assert entry["response"]["status"] == 0 and "no response seen" in entry["response"]["_note"]


async def test_filters_pick_requests_and_each_entry_is_whole(client: Client, http: httpx.AsyncClient) -> None:
    await client.dispatch(same_request(load_object("pre.json")))
    await client.dispatch(same_request(load_object("response-gzip.json")))
    other = load_object("pre.json")
    other.request.headers["X-Request-Id"] = "req-2"
    await client.dispatch(other)
    entries = (await har(http, q="hook:response"))["log"]["entries"]
    assert [e["_tykInspector"]["capture_ids"] for e in entries] == [[1, 2]]  # the Pre hook comes along
    assert len((await har(http))["log"]["entries"]) == 2
    assert (await har(http, q="kind:event"))["log"]["entries"] == []
    bad = await http.get("/api/export", params={"format": "har", "q": "status:nope"})
    assert bad.status_code == 400 and bad.json()["query_error"]["position"] == 7
    assert (await http.get("/api/export", params={"format": "zip"})).status_code == 422


class TestRedacted:
    @pytest.fixture
    def settings(self) -> Settings:
        return with_settings(redact=True)()

    async def test_credentials_are_redacted(self, client: Client, http: httpx.AsyncClient) -> None:
        auth = same_request(load_object("custom-key-check.json"))
        await client.dispatch(auth)
        response = await http.get("/api/export", params={"format": "har"})
        assert auth.request.headers["Authorization"] not in response.text
        headers = response.json()["log"]["entries"][0]["request"]["headers"]
        assert {"name": "Authorization", "value": "[redacted]"} in headers
