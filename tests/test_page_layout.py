"""The page's layout at 1280, 1440, 1920 and 390 px: every column in full or with a tooltip, heads that
follow the rows sideways, resizable columns and split kept across reloads, every detail tab in view.

Each width leaves a screenshot in the test's temporary directory (pytest --basetemp=DIR keeps them)."""

# ruff: noqa: F811  (the shared-browser fixtures are imported, then named as test arguments)

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser as Chromium
from playwright.async_api import Locator, Page

from app.server import Inspector
from protogen import coprocess_common_pb2 as common
from tests.browser import chromium, client, dashboard_in, inspector  # noqa: F401
from tests.conftest import Client, load_event, load_object

pytestmark = pytest.mark.asyncio(loop_scope="module")

COLUMNS = ["c-mark", "c-id", "c-time", "c-kind", "c-hook", "c-name", "c-api", "c-method", "c-path", "c-status",
           "c-dur", "c-size"]  # fmt: skip
NARROW = ["c-mark", "c-id", "c-hook", "c-path", "c-status", "c-dur"]
# Cells that must never be cut: numbers and short words.
WHOLE = {"c-id", "c-time", "c-kind", "c-hook", "c-method", "c-status", "c-dur", "c-size"}


async def realistic(client: Client) -> None:
    """Traffic with long hook names, API IDs and paths, large bodies, every hook and an event."""
    api = "b84fe1a04e5648927971c0557971565c"
    for index in range(12):
        for name, hook in (("pre.json", common.Pre), ("custom-key-check.json", common.CustomKeyCheck),
                           ("post-key-auth.json", common.PostKeyAuth), ("post-json-body.json", common.Post),
                           ("response-gzip.json", common.Response)):  # fmt: skip
            obj = load_object(name)
            obj.hook_type = hook
            obj.hook_name = f"ValidateAndEnrich{name.split('.')[0].title().replace('-', '')}RequestHook"
            obj.spec["APIID"] = api
            obj.request.url = obj.request.request_uri = (
                f"/orders-api/v1/customers/{1000 + index}/orders?include=items,shipping,invoices&expand=true"
            )
            if hook == common.Post:
                obj.request.raw_body = b'{"pad": "' + b"x" * (900_000 + index) + b'"}'  # "879.0 KiB"
            await client.dispatch(obj)
    await client.event_bytes(load_event("event-auth-failure.json").SerializeToString())


async def width(locator: Locator) -> float:
    box = await locator.bounding_box()
    assert box is not None
    return box["width"]


async def measure(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = await page.evaluate(
        """() => {
          const list = document.getElementById("list");
          const head = document.getElementById("list-head");
          const cells = [];
          for (const row of [head.querySelector(".row"), ...list.querySelectorAll(".row")]) {
            for (const cell of row.children) {
              if (getComputedStyle(cell).display === "none") continue;
              const text = cell.textContent.trim();
              cells.push({ cls: cell.className.split(" ")[0], head: row.parentElement === head, text,
                cut: cell.scrollWidth > cell.clientWidth + 1, title: cell.title || cell.parentElement.title || "" });
            }
          }
          const bar = document.querySelector(".tabs");
          const barBox = bar ? bar.getBoundingClientRect() : null;
          const tabs = bar ? [...bar.querySelectorAll("[role=tab]")].map((t) => {
            const b = t.getBoundingClientRect();
            const inside = b.left >= barBox.left - 1 && b.right <= barBox.right + 1 && b.width > 0;
            return { label: t.textContent, inside };
          }) : [];
          const shown = [...head.querySelector(".row").children]
            .filter((c) => getComputedStyle(c).display !== "none").map((c) => c.className.split(" ")[0]);
          return { cells, tabs, shown, sideways: list.scrollWidth - list.clientWidth,
                   tabsOverflow: bar ? bar.scrollWidth - bar.clientWidth : 0 };
        }"""
    )
    return result


@pytest.mark.parametrize("width", [1280, 1440, 1920, 390])
async def test_every_column_and_tab_shows_at_common_widths(
    chromium: Chromium, inspector: Inspector, client: Client, width: int, tmp_path: Path
) -> None:
    await realistic(client)
    height = 844 if width == 390 else 900
    async with dashboard_in(chromium, f"{inspector.http_url}/#capture=4", width=width, height=height) as browser:
        page = browser.page
        await browser.wait_rows(10)
        await page.wait_for_selector(".detail-head h2")
        await page.screenshot(path=str(tmp_path / f"dashboard-{width}.png"))
        found = await measure(page)
        assert found["shown"] == (NARROW if width == 390 else COLUMNS)
        assert found["sideways"] <= 0, f"the rows are {found['sideways']} px wider than the list at {width} px"
        whole_cut = [c for c in found["cells"] if c["cls"] in WHOLE and c["cut"]]
        assert whole_cut == [], whole_cut
        untitled = [c for c in found["cells"] if c["cut"] and not c["head"] and c["title"] != c["text"]]
        assert untitled == [], untitled[:3]
        assert found["tabs"] and all(t["inside"] for t in found["tabs"]), found["tabs"]
        assert found["tabsOverflow"] <= 0
        assert browser.errors == []


async def test_heads_follow_the_rows_sideways_and_sizes_are_kept(
    chromium: Chromium, inspector: Inspector, client: Client, tmp_path: Path
) -> None:
    await realistic(client)
    async with dashboard_in(chromium, inspector.http_url, width=1280) as browser:
        page = browser.page
        await browser.wait_rows(10)
        handle = page.locator("#list-head .c-path .col-resize")
        path_head = page.locator("#list-head .c-path")
        before = await width(path_head)
        box = await handle.bounding_box()
        assert box is not None
        await page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        await page.mouse.down()
        await page.mouse.move(box["x"] + 150, box["y"] + box["height"] / 2, steps=5)
        await page.mouse.up()
        after = await width(path_head)
        assert after == pytest.approx(before + 150 - box["width"] / 2, abs=4)
        # The list is now wider than its pane: it scrolls sideways, and the heads with it.
        await page.evaluate("document.getElementById('list').scrollLeft = 100")
        await page.wait_for_function("() => document.getElementById('list-head').scrollLeft === 100")
        row_path = page.locator("#list .row .c-path").first
        head_box, row_box = await path_head.bounding_box(), await row_path.bounding_box()
        assert head_box and row_box and head_box["x"] == pytest.approx(row_box["x"], abs=1)
        assert head_box["width"] == pytest.approx(row_box["width"], abs=1)
        # The split between list and detail, by keyboard.
        pane = page.locator(".list-pane")
        pane_before = await width(pane)
        await page.focus("#splitter")
        for _ in range(3):
            await page.keyboard.press("ArrowLeft")
        pane_after = await width(pane)
        assert pane_after == pytest.approx(pane_before - 96, abs=3)
        await page.screenshot(path=str(tmp_path / "resized-1280.png"))
        await page.reload()
        await page.wait_for_selector("#connection[data-state='live']")
        assert await width(path_head) == pytest.approx(after, abs=2)
        assert await width(pane) == pytest.approx(pane_after, abs=2)
        # A double-click puts a column back.
        await page.locator("#list-head .c-path .col-resize").dblclick()
        await page.wait_for_function(
            "w => Math.abs(document.querySelector('#list-head .c-path').getBoundingClientRect().width - w) > 20",
            arg=after,
        )
        assert browser.errors == []
