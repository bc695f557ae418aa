"""`tyk-inspector send --meta KEY=VALUE`, and an export's own call metadata sent again (Objects and Events)."""

from __future__ import annotations

from pathlib import Path

import httpx

from app.server import Inspector
from tests.conftest import Client, load_object
from tests.test_cli import run_cli

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def test_send_carries_the_metadata_given(inspector: Inspector) -> None:
    target = f"127.0.0.1:{inspector.grpc_port}"
    code, _, err = await run_cli("send", str(EXAMPLES / "pre.json"), "--to", target, "--meta", f"traceparent={TRACE}",
                                 "--meta", "X-Tenant=acme")  # fmt: skip
    assert code == 0, err
    [capture] = inspector.store.oldest_first()
    assert ("traceparent", TRACE) in capture.metadata and ("x-tenant", "acme") in capture.metadata


async def test_send_of_an_export_keeps_each_captures_metadata(inspector: Inspector, client: Client) -> None:
    await client.dispatch(load_object("pre.json"), metadata=(("traceparent", TRACE), ("x-tenant", "acme")))
    await client.event_bytes(b"\x0a\x05hello", metadata=(("traceparent", TRACE),))
    async with httpx.AsyncClient(base_url=inspector.http_url) as http:
        export = (await http.get("/api/export")).content
    target = f"127.0.0.1:{inspector.grpc_port}"
    code, _, err = await run_cli("send", "-", "--to", target, "--meta", "x-tenant=globex", stdin=export)
    assert code == 0, err
    _, _, dispatch, event = inspector.store.oldest_first()
    assert dispatch.kind == "dispatch" and ("traceparent", TRACE) in dispatch.metadata
    assert ("x-tenant", "globex") in dispatch.metadata and ("x-tenant", "acme") not in dispatch.metadata
    assert event.kind == "event" and ("traceparent", TRACE) in event.metadata


async def test_bad_metadata_is_refused_before_sending(inspector: Inspector) -> None:
    target = f"127.0.0.1:{inspector.grpc_port}"
    for bad in ("novalue", ":authority=x", "grpc-timeout=1S", "key=caf\u00e9"):
        code, _, err = await run_cli("send", str(EXAMPLES / "pre.json"), "--to", target, "--meta", bad)
        assert code == 2 and "--meta" in err, (bad, err)
    assert list(inspector.store.oldest_first()) == []
