"""`tyk-inspector verify`: traffic recorded through a real inspector, verified against a real plugin server
process in two builds, the CLI run as a process, its JUnit XML validated against the shipped schema."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from app.tyk.compare import compare
from app.tyk.outcome import LATEST_GATEWAY
from app.verify.junit import SCHEMA
from protogen import coprocess_common_pb2 as common
from protogen import coprocess_object_pb2 as pb
from tests.conftest import ROOT, load_object
from tests.plugin_builds import plugin_build
from tests.plugins import inspector_in_front, unused_target


def response_with_cookies() -> pb.Object:
    """A Response hook call whose upstream set two cookies: the header sync differs before Tyk 5.8.0."""
    obj = pb.Object(hook_type=common.Response, hook_name="MyResponseHook")
    obj.request.url = "/orders-api/v1/orders"
    obj.request.method = "GET"
    obj.spec["APIID"] = "b84fe1a04e5648927971c0557971565c"
    obj.response.status_code = 200
    obj.response.raw_body = b'{"orders": []}'
    obj.response.headers["Set-Cookie"] = "a=1"
    obj.response.headers["Content-Type"] = "application/json"
    obj.response.multivalue_headers.add(key="Set-Cookie", values=["a=1", "b=2"])
    obj.response.multivalue_headers.add(key="Content-Type", values=["application/json"])
    return obj


def auth(header: str) -> pb.Object:
    obj = load_object("custom-key-check.json")
    obj.request.headers["Authorization"] = header
    return obj


async def record(target: str, path: Path) -> None:
    """Traffic through an inspector in front of `target`, exported to `path` as the expectations."""
    async with inspector_in_front(target) as (client, http):
        for obj in (
            load_object("pre.json"),
            auth("Bearer good"),
            auth("Bearer bad"),
            load_object("post-key-auth.json"),
            response_with_cookies(),
        ):
            await client.dispatch(obj)
        await client.event('{"event": "AuthFailure"}')
        response = await http.get("/api/export")
        assert response.status_code == 200
        await asyncio.to_thread(path.write_bytes, response.content)


async def verify(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "main.py", "verify", *args, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def rows(table: str) -> dict[str, str]:
    """The table's lines by hook (second column onwards), header and totals left out."""
    found = {}
    for line in table.splitlines()[1:]:
        parts = line.split()
        if len(parts) > 2 and parts[0].isdigit():
            found[f"{parts[1]} {parts[2]}"] = line
    return found


def validated(path: Path) -> etree._ElementTree:
    schema = etree.XMLSchema(etree.parse(str(SCHEMA)))
    document = etree.parse(str(path))
    schema.assertValid(document)
    return document


async def test_a_changed_build_fails_naming_the_request_and_the_difference(tmp_path: Path) -> None:
    captures = tmp_path / "captures.json"
    async with plugin_build(1) as build_1:
        await record(build_1, captures)
        code, out, err = await verify(str(captures), "--upstream", build_1, "--junit", str(tmp_path / "same.xml"))
    assert code == 0, out + err
    assert "5 verified: 5 same, 0 changed, 1 skipped" in out
    same = validated(tmp_path / "same.xml")
    assert same.getroot().get("failures") == "0" and same.getroot().get("tests") == "6"

    async with plugin_build(2) as build_2:
        code, out, err = await verify(str(captures), "--upstream", build_2, "--junit", str(tmp_path / "changed.xml"))
        assert code == 1, out + err
        table = rows(out)
        assert "CHANGED" in table["Pre MyPreHook"]
        assert "upstream header X-Plan: 'gold' -> 'silver'" in table["Pre MyPreHook"]
        assert "GET /orders-api/v1/orders?status=open&limit=20" in table["Pre MyPreHook"]
        # What the gateway ignores is no change: a headers map edit, a response body string.
        for hook in ("PostKeyAuth", "Response MyResponseHook", "CustomKeyCheck"):
            assert all(" same" in line for key, line in table.items() if key.startswith(hook)), out
        assert "5 verified: 4 same, 1 changed, 1 skipped" in out
        junit = validated(tmp_path / "changed.xml")
        failures = junit.findall(".//failure")
        assert len(failures) == 1
        assert "X-Plan" in (failures[0].get("message") or "")
        case = failures[0].getparent()
        assert case is not None and "Pre MyPreHook" in (case.get("name") or "")
        assert len(junit.findall(".//skipped")) == 1  # the event

        # --only narrows the set: the Response hook alone is unchanged.
        code, out, _ = await verify(str(captures), "--upstream", build_2, "--only", "hook:response")
        assert code == 0 and "1 verified: 1 same, 0 changed" in out and "Pre" not in out

        # --update takes the new build's replies as the expectations; then it verifies clean.
        # With --only, the captures it leaves out stay in the file as they were.
        code, out, _ = await verify(str(captures), "--upstream", build_2, "--update", "--only", "hook:response")
        assert code == 0 and "expectations updated" in out
        assert len(json.loads(captures.read_text())["captures"]) == 6
        code, out, _ = await verify(str(captures), "--upstream", build_2)
        assert code == 1 and "X-Plan" in out
        code, out, _ = await verify(str(captures), "--upstream", build_2, "--update")
        assert code == 0 and "expectations updated" in out
        document = json.loads(captures.read_text())
        assert len(document["captures"]) == 6
        pre = next(c for c in document["captures"] if c["request"] and c["request"].get("hookType") == "Pre")
        assert pre["reply"]["request"]["setHeaders"] == {"X-Plan": "silver"}
        code, out, _ = await verify(str(captures), "--upstream", build_2)
        assert code == 0, out


async def test_usage_and_connection_errors_exit_2(tmp_path: Path) -> None:
    captures = tmp_path / "captures.json"
    async with plugin_build(1) as build_1:
        await record(build_1, captures)
    code, _, err = await verify(str(captures), "--upstream", unused_target())
    assert code == 2 and "cannot connect to the plugin server" in err
    code, _, err = await verify(str(tmp_path / "missing.json"), "--upstream", unused_target())
    assert code == 2 and "cannot read" in err
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    code, _, err = await verify(str(tmp_path / "bad.json"), "--upstream", "127.0.0.1:1")
    assert code == 2 and "not a Tyk Inspector export" in err
    code, _, err = await verify(str(captures))
    assert code == 2 and "--against-version" in err
    code, _, err = await verify(str(captures), "--against-version", "5.8.0", "--only", "hook:(")
    assert code == 2 and "--only" in err
    code, _, err = await verify(str(captures), "--tyk-version", "five")
    assert code == 2 and "--tyk-version" in err
    # An export made with redaction on is verified, with a word on what that means.
    redacted = json.loads(captures.read_text())
    redacted["redacted"] = True
    redacted["captures"][0]["grpc_status"] = "CANCELLED"
    captures.write_text(json.dumps(redacted))
    code, out, err = await verify(str(captures), "--tyk-version", "5.8.0", "--against-version", "5.14.0")
    assert code == 0 and "exported redacted" in err
    assert "skipped  the gateway went away before the reply" in rows(out)["Pre MyPreHook"]


async def test_upgrade_impact_names_the_replies_a_tyk_upgrade_handles_differently(tmp_path: Path) -> None:
    captures = tmp_path / "captures.json"
    async with plugin_build(1) as build_1:
        await record(build_1, captures)
    # The Response hook changed the headers map of a response with two cookies: before 5.8.0 the
    # gateway's header sync keeps one Set-Cookie, from 5.8.0 both (TT-13440).
    code, out, err = await verify(
        str(captures), "--tyk-version", "5.7.2", "--against-version", "5.14.0", "--junit", str(tmp_path / "up.xml")
    )
    assert code == 1, out + err
    table = rows(out)
    assert "response header Set-Cookie: 'a=1' -> ['a=1', 'b=2']" in table["Response MyResponseHook"]
    assert all("CHANGED" not in line for key, line in table.items() if not key.startswith("Response")), out
    validated(tmp_path / "up.xml")
    # Within one behaviour of the model, an upgrade changes nothing for these replies.
    code, out, _ = await verify(str(captures), "--tyk-version", "5.8.0", "--against-version", "5.14.0")
    assert code == 0, out


def test_a_reserialized_echo_and_header_order_are_the_same_outcome() -> None:
    sent = load_object("pre.json")
    data = sent.SerializeToString()
    reordered = pb.Object()
    reordered.CopyFrom(sent)
    reordered.request.set_headers["B"] = "2"
    reordered.request.set_headers["A"] = "1"
    before = pb.Object()
    before.CopyFrom(sent)
    before.request.set_headers["A"] = "1"
    before.request.set_headers["B"] = "2"
    gateway = LATEST_GATEWAY
    assert compare(data, data, bytes(sent.SerializeToString(deterministic=True)), gateway).same
    assert compare(data, before.SerializeToString(), reordered.SerializeToString(deterministic=True), gateway).same
    # A different upstream URL, or a failed call, is a change.
    moved = pb.Object()
    moved.CopyFrom(sent)
    moved.request.url = "/orders-api/v2/orders?status=open&limit=20"
    verdict = compare(data, data, moved.SerializeToString(), gateway)
    assert not verdict.same and "upstream URL" in verdict.difference
    failed = compare(data, data, None, gateway)
    assert not failed.same and failed.after == 500 and failed.difference.startswith("continue -> HTTP 500")


def test_a_changed_session_of_an_auth_reply_is_named() -> None:
    sent = load_object("custom-key-check.json")
    allowed = pb.Object()
    allowed.CopyFrom(sent)
    allowed.session.rate, allowed.session.per = 100, 1
    allowed.metadata["token"] = "user-1"
    stricter = pb.Object()
    stricter.CopyFrom(allowed)
    stricter.session.rate = 10
    verdict = compare(
        sent.SerializeToString(), allowed.SerializeToString(), stricter.SerializeToString(), LATEST_GATEWAY
    )
    assert not verdict.same and verdict.difference == "session changed rate: 100.0 -> 10.0"
    # The same session edit in a Pre hook's reply is ignored by the gateway.
    pre = load_object("pre.json")
    ignored = pb.Object()
    ignored.CopyFrom(pre)
    ignored.session.rate = 10
    assert compare(pre.SerializeToString(), pre.SerializeToString(), ignored.SerializeToString(), LATEST_GATEWAY).same


@pytest.mark.parametrize("text", ["\x1b[31mred", "a\x00b"])
def test_junit_escapes_what_xml_cannot_carry(tmp_path: Path, text: str) -> None:
    from app.capture.record import Capture
    from app.verify.junit import write_junit
    from app.verify.run import Result

    capture = Capture(kind="dispatch", request=b"", reply=b"", hook_type="Pre", hook_name=text)
    write_junit([Result(capture, 1, skipped=text)], str(tmp_path / "j.xml"), suite=text)
    validated(tmp_path / "j.xml")


async def test_rules_route_each_capture_as_the_inspector_would(tmp_path: Path) -> None:
    captures = tmp_path / "captures.json"
    async with plugin_build(1) as build_1:
        await record(build_1, captures)
        # A mock answering the Pre hook as build 1 does: the same outcome. One answering otherwise: changed.
        pre: dict[str, Any] = {"match": {"hook_type": "Pre"}, "mock": {"set_headers": {"X-Plan": "gold"}}}
        rules = {"default": build_1, "rules": [pre]}
        (tmp_path / "rules.json").write_text(json.dumps(rules))
        code, out, err = await verify(str(captures), "--rules", str(tmp_path / "rules.json"))
        assert code == 0, out + err
        pre["mock"] = {"set_headers": {"X-Plan": "gold"}, "delete_headers": ["Accept"]}
        (tmp_path / "rules.json").write_text(json.dumps(rules))
        code, out, err = await verify(str(captures), "--rules", str(tmp_path / "rules.json"))
        assert code == 1 and "upstream header Accept removed (was 'application/json')" in rows(out)["Pre MyPreHook"]
