"""Rule faults (`fault:` delay, fail, drop, oversize, probability) through a real inspector and real gRPC
clients: what the client gets, and how the capture is marked."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.message import DecodeError

from app.proxy.faults import Fault
from app.proxy.rules import RulesError, parse_rules
from protogen import coprocess_common_pb2 as common
from protogen import coprocess_object_pb2 as pb
from tests.conftest import Client, load_object
from tests.plugins import header_plugin, plugin_server
from tests.test_proxy import detail, inspector_with, write_rules


def rules_with(fault: dict[str, Any], hook_type: str = "Pre", **action: Any) -> dict[str, Any]:
    return {"rules": [{"name": "chaos", "match": {"hook_type": hook_type}, "fault": fault, **action}]}


async def test_delay_holds_the_answer_then_answers_as_usual(tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "rules.yaml", rules_with({"delay": "300ms"}))
    async with inspector_with(rules_file=str(rules)) as (_inspector, client, http):
        sent = load_object("pre.json")
        began = time.perf_counter()
        assert await client.dispatch(sent) == sent  # the echo, late
        assert time.perf_counter() - began >= 0.3
        capture = await detail(http, 1)
        assert capture["fault"] == "delay 300 ms" and capture["duration_ms"] >= 300
        found = (await http.get("/api/captures", params={"q": "fault:delay*"})).json()["items"]
        assert [c["id"] for c in found] == [1]
        assert capture["outcome"]["status"] == "continue"
        # Other hooks are not matched: no delay, no mark.
        await client.dispatch(load_object("post-key-auth.json"))
        assert (await detail(http, 2))["fault"] is None


@pytest.mark.parametrize(
    ("hook_file", "status"), [("pre.json", 500), ("custom-key-check.json", 403)], ids=["pre", "auth"]
)
async def test_fail_gives_the_gateway_the_status_and_the_client_500_or_403(
    tmp_path: Path, hook_file: str, status: int
) -> None:
    sent = load_object(hook_file)
    fault = {"fail": {"code": "UNAVAILABLE", "details": "plugin restarting"}, "delay": "50ms"}
    rules = write_rules(tmp_path / "rules.yaml", rules_with(fault, hook_type=common.HookType.Name(sent.hook_type)))
    async with inspector_with(rules_file=str(rules)) as (_inspector, client, http):
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await client.dispatch(sent)
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
        assert failed.value.details() == "plugin restarting"
        capture = await detail(http, 1)
        assert (capture["grpc_status"], capture["answered_by"]) == ("UNAVAILABLE", "fault")
        assert capture["outcome_status"] == status and capture["outcome"]["status"] == status
        assert capture["fault"] == "delay 50 ms, fail UNAVAILABLE" and capture["duration_ms"] >= 50


async def test_drop_answers_bytes_the_gateway_cannot_decode(tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "rules.yaml", rules_with({"drop": True}))
    async with inspector_with(rules_file=str(rules)) as (_inspector, client, http):
        reply = await client.dispatch_bytes(load_object("pre.json").SerializeToString())
        with pytest.raises(DecodeError):
            pb.Object.FromString(reply)
        capture = await detail(http, 1)
        assert capture["fault"] == "drop" and capture["grpc_status"] == "OK"
        assert capture["outcome_status"] == 500
        assert "not a coprocess.Object" in capture["outcome"]["summary"]


async def test_oversize_passes_the_default_receive_limit_and_a_raised_one_reads_it_unchanged(tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "rules.yaml", rules_with({"oversize": True}, upstream="{plugin}"))
    async with plugin_server(header_plugin) as plugin:
        rules.write_text(rules.read_text().replace("'{plugin}'", plugin.target))
        async with inspector_with(rules_file=str(rules)) as (inspector, client, http):
            sent = load_object("pre.json")
            # The gateway's client keeps grpc-go's 4 MiB default unless grpc_recv_max_size is set.
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await client.dispatch(sent)
            assert failed.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            capture = await detail(http, 1)
            assert capture["fault"] == "oversize" and capture["reply_size"] > 4 * 1024 * 1024
            assert capture["outcome_status"] == 500 and "receive limit" in capture["outcome"]["summary"]
            options = [("grpc.max_receive_message_length", 100_000_000)]
            async with grpc.aio.insecure_channel(f"127.0.0.1:{inspector.grpc_port}", options=options) as channel:
                reply = await Client(channel).dispatch(sent)
            assert reply.request.set_headers["X-Plugin"] == "headers"  # the plugin's answer, padding skipped


async def test_probability_faults_a_share_of_the_calls(tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "rules.yaml", rules_with({"drop": True, "probability": 0.3}))
    async with inspector_with(rules_file=str(rules)) as (_inspector, client, http):
        data = load_object("pre.json").SerializeToString()
        replies = [await client.dispatch_bytes(data) for _ in range(200)]
        dropped = sum(reply != data for reply in replies)
        # Binomial(200, 0.3): mean 60, sd 6.5; these bounds are more than 6 sd away.
        assert 20 <= dropped <= 100, dropped
        items = (await http.get("/api/captures", params={"limit": 1000})).json()["items"]
        assert sum(item["fault"] == "drop" for item in items) == dropped
        faulted = (await http.get("/api/captures", params={"q": "fault:drop", "limit": 1000})).json()["items"]
        assert len(faulted) == dropped


def test_fault_strikes_by_its_probability() -> None:
    assert Fault(drop=True, probability=0.1).strikes(lambda: 0.05)
    assert not Fault(drop=True, probability=0.1).strikes(lambda: 0.1)
    assert Fault(drop=True).strikes(lambda: 0.999)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({"delay": "soon"}, "fault.delay must be like 300ms"),
        ({"delay": "301s"}, "at most 300s"),
        ({"fail": {"code": "NOPE"}}, "fault.fail.code must be a gRPC status other than OK"),
        ({"fail": {"code": "OK"}}, "other than OK"),
        ({"fail": "UNAVAILABLE", "drop": True}, "give one of fault.fail, fault.drop and fault.oversize"),
        ({"probability": 0}, "fault.probability must be a number above 0"),
        ({"probability": 0.5}, "'fault' does nothing"),
        ({"dealy": "1s"}, "not dealy"),
        ({"drop": "yes"}, "fault.drop must be true or false"),
        ("drop", "'fault' takes delay, fail, drop, oversize, probability"),
    ],
)
def test_bad_faults_are_refused_naming_the_rule(fault: Any, message: str) -> None:
    with pytest.raises(RulesError, match="chaos") as refused:
        parse_rules(rules_with(fault))
    assert message in str(refused.value)


def test_a_fault_goes_with_any_action() -> None:
    rules = parse_rules(rules_with({"delay": 1.5, "fail": "INTERNAL"}, mock={"set_headers": {"X": "1"}}))
    rule = rules.rules[0]
    assert rule.action == "mock"
    assert rule.fault == Fault(1.5, grpc.StatusCode.INTERNAL, "fault injected by the inspector")
    assert parse_rules(rules_with({"drop": True})).rules[0].action == "echo"
