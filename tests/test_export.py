"""Export and import: a versioned document, lossless round trip, atomic and clear on bad input."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from google.protobuf import json_format

from app.config import Settings
from app.server import Inspector
from protogen import coprocess_object_pb2 as pb
from tests.conftest import HOOK_PAYLOADS, Client, load_event, load_object, with_settings


async def fill(client: Client) -> None:
    for payload in HOOK_PAYLOADS:
        await client.dispatch(load_object(payload), metadata=(("x-tenant", "acme"),))
    await client.event_bytes(load_event("event-auth-failure.json").SerializeToString())
    await client.event("plain text, not JSON")
    obj = load_object("pre.json")
    obj.request.raw_body = bytes(range(256))  # every byte value
    await client.dispatch(obj)
    with pytest.raises(Exception, match="INVALID_ARGUMENT"):
        await client.dispatch_bytes(b"\xff\x00 not protobuf")


def comparable(record: dict[str, Any]) -> dict[str, Any]:
    """A record without what an import legitimately changes (its id, the imported flag and the original id)."""
    return {k: v for k, v in record.items() if k not in ("id", "imported", "imported_id")}


async def test_export_import_export_is_lossless(inspector: Inspector, client: Client, http: httpx.AsyncClient) -> None:
    await fill(client)
    originals = list(inspector.store.oldest_first())
    first = await http.get("/api/export")
    assert first.status_code == 200
    assert first.headers["content-disposition"].startswith('attachment; filename="tyk-inspector-')
    document = first.json()
    assert (document["format"], document["version"]) == ("tyk-inspector-export", 1)
    assert len(document["captures"]) == len(originals) == 10

    await http.delete("/api/captures")
    imported = await http.post("/api/import", content=first.content)
    assert imported.status_code == 201 and imported.json()["imported"] == 10

    copies = list(inspector.store.oldest_first())
    for original, copy in zip(originals, copies, strict=True):
        assert copy.imported and copy.kind == original.kind
        message_type = pb.Object if original.kind == "dispatch" else pb.Event
        if original.error is None:
            assert message_type.FromString(copy.request) == message_type.FromString(original.request)
        else:
            assert copy.request == original.request  # undecodable bytes survive as they arrived
        assert copy.reply is None if original.reply is None else copy.reply is not None
        assert (copy.reply is copy.request) == (original.reply is original.request)
        by_import = {"id": 0, "imported": False, "imported_id": None}  # what an import changes
        assert copy.summary() | by_import == original.summary() | by_import
    binary = pb.Object.FromString(copies[-2].request)
    assert binary.request.raw_body == bytes(range(256))

    second = (await http.get("/api/export")).json()
    assert [comparable(r) for r in second["captures"]] == [comparable(r) for r in document["captures"]]
    # Each import keeps the id where the capture was first recorded.
    assert [r["imported_id"] for r in document["captures"]] == [None] * 10
    assert [r["imported_id"] for r in second["captures"]] == [r["id"] for r in document["captures"]]


async def test_exported_request_can_be_parsed_and_sent_again(client: Client, http: httpx.AsyncClient) -> None:
    await client.dispatch(load_object("post-key-auth.json"))
    record = (await http.get("/api/captures/1/export")).json()["captures"][0]
    obj = json_format.ParseDict(record["request"], pb.Object())
    assert obj == load_object("post-key-auth.json")
    assert await client.dispatch(obj) == obj


async def test_filtered_export(client: Client, http: httpx.AsyncClient) -> None:
    await fill(client)
    document = (await http.get("/api/export", params={"hook_type": "Response"})).json()
    assert [r["request"]["hookName"] for r in document["captures"]] == ["MyResponseHook", "MyResponsePlugin"]
    assert (await http.get("/api/captures/999/export")).status_code == 404


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty body"),
        (b"not json", "not a JSON document"),
        (b'{"format": "tyk-inspector-export", "version": 1, "captures": [', "not a JSON document"),
        (b"[1, 2]", "not a Tyk Inspector export"),
        (b'{"format": "something-else"}', "not a Tyk Inspector export"),
        (b'{"format": "tyk-inspector-export", "version": 99, "captures": []}', "unsupported export version"),
        (b'{"format": "tyk-inspector-export", "version": 1, "captures": {}}', '"captures" must be a list'),
        (b'{"format": "tyk-inspector-export", "version": 1, "captures": [7]}', "capture #0: must be an object"),
        (
            b'{"format": "tyk-inspector-export", "version": 1, "captures": [{"kind": "event", '
            b'"received_at": "2026-01-01T00:00:00Z", "request": {"payload": ""}, "duration_ms": "slow"}]}',
            'capture #0: "duration_ms" must be a number',
        ),
        (
            b'{"format": "tyk-inspector-export", "version": 1, "captures": [{"kind": "event", '
            b'"received_at": "yesterday", "request": {"payload": ""}}]}',
            'capture #0: "received_at" is not an ISO 8601 time',
        ),
        (  # Python refuses to convert more than 4,300 digits: a ValueError that was a 500
            b'{"format": "tyk-inspector-export", "version": 1, "captures": [{"kind": "event", '
            b'"received_at": "2026-01-01T00:00:00Z", "request": {"payload": ""}, "duration_ms": '
            + b"9" * 5000
            + b"}]}",
            "a number with 5000 digits is out of range",
        ),
        (
            b'{"format": "tyk-inspector-export", "version": -' + b"1" * 4301 + b', "captures": []}',
            "a number with 4301 digits is out of range",
        ),
    ],
)
async def test_invalid_import_is_400_and_changes_nothing(
    inspector: Inspector, client: Client, http: httpx.AsyncClient, body: bytes, message: str
) -> None:
    await fill(client)
    before = [c.id for c in inspector.store.oldest_first()]
    response = await http.post("/api/import", content=body)
    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert [c.id for c in inspector.store.oldest_first()] == before


async def test_import_is_all_or_nothing(inspector: Inspector, client: Client, http: httpx.AsyncClient) -> None:
    await fill(client)
    document = (await http.get("/api/export")).json()
    document["captures"][5]["request"] = {"hookType": "NoSuchHook"}
    response = await http.post("/api/import", content=json.dumps(document))
    assert response.status_code == 400
    assert "capture #5" in response.json()["detail"] and "coprocess.Object" in response.json()["detail"]
    assert inspector.store.stats().count == 10


class TestImportLimit:
    @pytest.fixture
    def settings(self) -> Settings:
        return with_settings(max_import_bytes=1000)()

    async def test_oversized_import_is_413(self, http: httpx.AsyncClient) -> None:
        response = await http.post("/api/import", content=b" " * 1001)
        assert response.status_code == 413
        assert "1000-byte limit" in response.json()["detail"]

        async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: the limit holds while reading
            for _ in range(20):
                yield b" " * 100

        response = await http.post("/api/import", content=chunked())
        assert response.status_code == 413


async def test_imported_replays_link_to_their_originals_new_ids(client: Client, http: httpx.AsyncClient) -> None:
    for _ in range(2):
        await client.dispatch(load_object("pre.json"))
    document = (await http.get("/api/export")).json()
    first, second = document["captures"]
    second["replay_of"] = first["id"]  # a replay of the first, as an export of a replay says
    stray = dict(second, replay_of=999)  # a replay whose original the file does not hold
    document["captures"] = [first, second, stray] * 300  # several import batches: links across them
    imported = await http.post("/api/import", json=document)
    assert imported.status_code == 201
    ids = imported.json()["ids"]
    summaries = {
        c["id"]: c for c in (await http.get("/api/captures", params={"after": 2, "limit": 1000})).json()["items"]
    }
    for n in range(0, len(ids), 3):
        original, replay, orphan = ids[n : n + 3]
        assert summaries[replay]["replay_of"] == original
        assert summaries[orphan]["replay_of"] is None
        assert summaries[original]["replay_of"] is None


async def test_a_reimport_is_recognised_by_its_original_id_and_content(client: Client, http: httpx.AsyncClient) -> None:
    await client.dispatch(load_object("pre.json"))
    document = (await http.get("/api/export")).json()
    [record] = document["captures"]
    # The same time and messages under another id: another capture, not this one again.
    twin = dict(record, id=record["id"] + 100)
    document["captures"].append(twin)
    checked = await http.post("/api/import", params={"duplicates": "check"}, json=document)
    assert checked.status_code == 409 and (checked.json()["duplicates"], checked.json()["total"]) == (1, 2)
    skipped = await http.post("/api/import", params={"duplicates": "skip"}, json=document)
    assert skipped.status_code == 201 and (skipped.json()["imported"], skipped.json()["skipped"]) == (1, 1)
    [new_id] = skipped.json()["ids"]
    shown = (await http.get(f"/api/captures/{new_id}")).json()
    assert shown["imported"] and shown["imported_id"] == twin["id"]
    # An export of the import carries the original id: imported here again, it is recognised...
    again = (await http.get("/api/export")).json()
    assert [(r["id"], r["imported_id"]) for r in again["captures"]] == [(record["id"], None), (new_id, twin["id"])]
    recheck = await http.post("/api/import", params={"duplicates": "check"}, json=again)
    assert recheck.status_code == 409 and recheck.json()["duplicates"] == 2
    # ...and in a clean buffer, the second import of the file is.
    await http.delete("/api/captures")
    first = await http.post("/api/import", params={"duplicates": "check"}, json=again)
    assert first.status_code == 201 and first.json()["duplicates"] == 0
    kept = [(await http.get(f"/api/captures/{i}")).json()["imported_id"] for i in first.json()["ids"]]
    assert kept == [record["id"], twin["id"]]
    second = await http.post("/api/import", params={"duplicates": "check"}, json=again)
    assert second.status_code == 409 and second.json()["duplicates"] == 2
    bad = await http.post("/api/import", json={**again, "captures": [dict(record, imported_id=0)]})
    assert bad.status_code == 400 and "imported_id" in bad.json()["detail"]
