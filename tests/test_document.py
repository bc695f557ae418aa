"""One capture -> JSON path: the detail, the export and the console log agree, and an export
round-trips proxied, mocked, replayed and failed captures with everything that says who answered."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.formats.document import RECORD_FIELDS, json_chunks
from tests.conftest import load_object, wait_until
from tests.plugins import failing_plugin, header_plugin, plugin_server, raw_plugin_server
from tests.test_export import comparable
from tests.test_proxy import inspector_with, write_rules

# Who answered, and how: what an imported proxied capture must not forget.
ANSWER_FIELDS = ("answered_by", "rule", "upstream", "upstream_status", "upstream_ms", "replay_of", "grpc_status")


async def export(http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.get("/api/export")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


async def test_proxied_mocked_replayed_and_failed_captures_round_trip(tmp_path: Path) -> None:
    async with plugin_server(header_plugin) as good, plugin_server(failing_plugin) as bad:
        rules = write_rules(tmp_path / "rules.yaml", {
            "rules": [
                {"name": "mocked", "match": {"hook_type": "PostKeyAuth"}, "mock": {"metadata": {"plan": "gold"}}},
                {"name": "failing", "match": {"hook_type": "Response"}, "upstream": bad.target},
                {"name": "proxied", "match": {"hook_type": "Pre"}, "upstream": good.target},
            ],
        })  # fmt: skip
        async with inspector_with(rules_file=str(rules)) as (inspector, client, http):
            await client.dispatch(load_object("pre.json"))
            await client.dispatch(load_object("post-key-auth.json"))
            with pytest.raises(grpc.aio.AioRpcError):
                await client.dispatch(load_object("response-gzip.json"))
            assert (await http.post("/api/captures/1/replay", json={})).status_code == 201

            document = await export(http)
            records = document["captures"]
            assert [(r["answered_by"], r["rule"]) for r in records] == [
                ("upstream", "proxied"), ("mock", "mocked"), ("upstream", "failing"), ("upstream", None),
            ]  # fmt: skip
            assert [r["upstream_status"] for r in records] == ["OK", None, "UNKNOWN", "OK"]
            assert [r["grpc_status"] for r in records] == ["OK", "OK", "UNKNOWN", "OK"]
            assert records[3]["replay_of"] == 1 and records[0]["upstream"] == good.target
            assert records[0]["upstream_ms"] > 0 and records[2]["reply"] is None

            # The detail shows the same fields with the same values as the export.
            for record in records:
                shown = (await http.get(f"/api/captures/{record['id']}")).json()
                assert {f: shown[f] for f in RECORD_FIELDS} == {f: record[f] for f in RECORD_FIELDS}
                assert (shown["request"], shown["reply"], shown["echo"]) == (
                    record["request"], record["reply"], record["echo"],
                )  # fmt: skip

            await http.delete("/api/captures")
            assert (await http.post("/api/import", json=document)).status_code == 201
            again = await export(http)
            # The replay links to its original's new id; everything else is as exported.
            assert again["captures"][3]["replay_of"] == again["captures"][0]["id"] != records[3]["replay_of"]
            relinked = [dict(r) for r in again["captures"]]
            relinked[3]["replay_of"] = records[3]["replay_of"]
            assert [comparable(r) for r in relinked] == [comparable(r) for r in records]
            listed = (await http.get("/api/captures", params={"after": 0})).json()["items"]
            assert [{f: c[f] for f in ANSWER_FIELDS} for c in listed] == [
                {f: r[f] for f in ANSWER_FIELDS} for r in again["captures"]
            ]
            assert all(c["imported"] for c in listed)
            assert inspector.store.stats().count == 4


async def test_an_undecodable_upstream_reply_is_exported_as_raw_bytes() -> None:
    garbage = b"\xff\xff\xff\xff\x0f-not-protobuf"
    async with (
        raw_plugin_server(garbage) as target,
        inspector_with(upstream=target) as (_inspector, client, http),
    ):
        assert await client.dispatch_bytes(load_object("pre.json").SerializeToString()) == garbage
        shown = (await http.get("/api/captures/1")).json()
        assert shown["reply"] is None and shown["reply_base64"]
        document = await export(http)
        (record,) = document["captures"]
        assert record["reply"] is None and record["reply_base64"] == shown["reply_base64"]
        await http.delete("/api/captures")
        assert (await http.post("/api/import", json=document)).status_code == 201
        assert (await export(http))["captures"][0]["reply_base64"] == record["reply_base64"]


@pytest.mark.parametrize("payload", ['{"message":"x"}', '{"message": {"Meta": 5}}', '{"message": [1]}'])
async def test_odd_event_payloads_are_shown_exported_and_logged_with_redaction_on(
    payload: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tyk_inspector.captures")
    async with inspector_with(redact=True, capture_log="json") as (inspector, client, http):
        await client.event(payload)
        await client.dispatch(load_object("pre.json"))  # the log task lives on after the odd event
        shown = await http.get("/api/captures/1")
        assert shown.status_code == 200
        assert json.loads(shown.json()["request"]["payload"]) == json.loads(payload)
        document = await export(http)
        assert len(document["captures"]) == 2 and document["redacted"] is True
        await wait_until(
            lambda: any("#2" in r.getMessage() for r in caplog.records), what="the capture after the odd event logged"
        )
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        console = next(t for t in inspector.supervisor.health()["tasks"] if t["name"] == "console-log")
        assert console == {"name": "console-log", "state": "running", "restarts": 0, "last_error": None}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None)
@given(json_values, st.integers(1, 40))
def test_json_in_bounded_pieces_is_the_same_json(value: Any, piece: int) -> None:
    # Small pieces, so long strings are split at every kind of character.
    text = b"".join(json_chunks(value, piece)).decode()
    assert json.loads(text) == value
    assert text == json.dumps(value, ensure_ascii=False, separators=(",", ":"))
