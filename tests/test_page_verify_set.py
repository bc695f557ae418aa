"""The page's "Save as verify set": the Dispatch calls listed, downloaded through Debian's Chromium, verified by
`tyk-inspector verify` (run as a process) against a real plugin server process in its two builds."""

# ruff: noqa: F811  (the shared-browser fixtures are imported, then named as test arguments)

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from playwright.async_api import Browser as Chromium

from tests.browser import chromium, dashboard_in  # noqa: F401
from tests.conftest import TEST_SETTINGS, grpc_client, http_client, load_object, running_inspector
from tests.plugin_builds import plugin_build
from tests.test_verify import auth, response_with_cookies, rows, verify

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_save_as_verify_set_downloads_the_listed_dispatch_calls_and_verifies_the_same_build(
    chromium: Chromium, tmp_path: Path
) -> None:
    saved = tmp_path / "verify-set.json"
    async with plugin_build(1) as build_1:
        async with (
            running_inspector(replace(TEST_SETTINGS, upstream=build_1)) as inspector,
            grpc_client(inspector) as client,
        ):
            for obj in (
                load_object("pre.json"),  # 1
                auth("Bearer good"),  # 2
                load_object("post-key-auth.json"),  # 3
                response_with_cookies(),  # 4
            ):
                await client.dispatch(obj)
            await client.event('{"event": "AuthFailure"}')  # 5: listed, but not a Dispatch call
            async with dashboard_in(chromium, inspector.http_url) as browser:
                page = browser.page
                await browser.wait_rows(5)
                # The set follows the filter: everything but the PostKeyAuth call is listed.
                await page.fill("#search", "-hook:PostKeyAuth")
                await browser.wait_for_ids([1, 2, 4, 5])
                await page.click("#export-button")
                href = await page.get_attribute("#export-verify", "href") or ""
                assert "format=verify" in href and "PostKeyAuth" in href
                async with page.expect_download() as download_info:
                    await page.click("#export-verify")
                download = await download_info.value
                assert download.suggested_filename.startswith("tyk-inspector-verify-")
                assert download.suggested_filename.endswith(".json")
                await download.save_as(saved)
                assert browser.errors == []

        document = json.loads(saved.read_text())
        assert document["format"] == "tyk-inspector-export"
        listed = [(c["id"], c["kind"]) for c in document["captures"]]
        assert listed == [(1, "dispatch"), (2, "dispatch"), (4, "dispatch")]

        code, out, err = await verify(str(saved), "--upstream", build_1)
        assert code == 0, out + err
        assert "3 verified: 3 same, 0 changed" in out and "skipped" not in out  # no event came along

    async with plugin_build(2) as build_2:
        code, out, err = await verify(str(saved), "--upstream", build_2)
    assert code == 1, out + err
    assert "upstream header X-Plan: 'gold' -> 'silver'" in rows(out)["Pre MyPreHook"]


async def test_the_verify_set_api_leaves_events_out_and_refuses_a_bad_query() -> None:
    async with running_inspector(TEST_SETTINGS) as inspector, grpc_client(inspector) as client:
        await client.dispatch(load_object("pre.json"))
        await client.event('{"event": "AuthFailure"}')
        async with http_client(inspector) as http:
            everything = (await http.get("/api/export")).json()
            assert [c["kind"] for c in everything["captures"]] == ["dispatch", "event"]
            answer = await http.get("/api/export", params={"format": "verify"})
            assert answer.status_code == 200
            assert [c["kind"] for c in answer.json()["captures"]] == ["dispatch"]
            # Filters still apply: asking for the events of a verify set gives none.
            events = await http.get("/api/export", params={"format": "verify", "q": "kind:event"})
            assert events.json()["captures"] == []
            bad = await http.get("/api/export", params={"format": "verify", "q": "hook:("})
            assert bad.status_code == 400 and "invalid query" in bad.json()["detail"]
            unknown = await http.get("/api/export", params={"format": "yaml"})
            assert unknown.status_code == 422
            assert "detail" in unknown.json()
