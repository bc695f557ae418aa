"""Driving the dashboard in Debian's Chromium through Playwright (no browser download)."""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser as Chromium
from playwright.async_api import Dialog, Page, async_playwright

from app.config import Settings
from app.server import Inspector
from tests.conftest import Client, grpc_client, http_client, running_inspector

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    path = os.environ.get("TYK_INSPECTOR_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(path):
        pytest.fail("Debian's chromium is needed for the browser tests: `make chromium` installs it")
    return path


@dataclass
class Browser:
    page: Page
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    async def rows(self) -> list[int]:
        ids: list[int] = await self.page.eval_on_selector_all("#list .row", "rows => rows.map(r => +r.dataset.id)")
        return sorted(ids)

    async def wait_rows(self, count: int) -> list[int]:
        """Wait until at least `count` rows are listed; the ids listed."""
        await self.page.wait_for_function("n => document.querySelectorAll('#list .row').length >= n", arg=count)
        return await self.rows()

    async def select(self, capture_id: int) -> None:
        """Click a capture's row and wait until its detail is shown."""
        await self.page.click(f"#list .row[data-id='{capture_id}']")
        await self.page.wait_for_function(
            "id => (document.querySelector('.detail-head p')?.textContent || '').startsWith(`#${id} `)",
            arg=capture_id,
        )

    async def wait_for_ids(self, ids: list[int]) -> None:
        """Wait until exactly these capture ids are listed."""
        await self.page.wait_for_function(
            "ids => JSON.stringify([...document.querySelectorAll('#list .row')].map(r => +r.dataset.id)"
            ".sort((a, b) => a - b)) === JSON.stringify(ids)",
            arg=sorted(ids),
        )


@asynccontextmanager
async def launch_chromium() -> AsyncIterator[Chromium]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@asynccontextmanager
async def dashboard_in(
    chromium: Chromium,
    url: str,
    *,
    width: int = 1500,
    height: int = 900,
    color_scheme: str = "light",
    bypass_csp: bool = True,
) -> AsyncIterator[Browser]:
    """The dashboard at `url` in a fresh browser context (no cookies, storage or cache shared).

    With `bypass_csp=False` the page runs under its own Content-Security-Policy; then only
    locators work, not `wait_for_function` (Playwright's polling evaluates code, which the CSP forbids).
    """
    # The page's CSP (no eval) is bypassed for Playwright's own polling; it also means the
    # XSS tests prove the page's rendering safe by itself, not only behind the CSP.
    context = await chromium.new_context(
        accept_downloads=True,
        viewport={"width": width, "height": height},
        bypass_csp=bypass_csp,
        color_scheme=color_scheme,  # type: ignore[arg-type]
    )
    try:
        page = await context.new_page()
        page.set_default_timeout(30_000)  # generous: the machine may be busy; waits end on their condition
        session = Browser(page)

        async def on_dialog(dialog: Dialog) -> None:
            session.dialogs.append(dialog.message)
            await dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("pageerror", lambda error: session.errors.append(str(error)))
        await page.goto(url)
        await page.wait_for_selector("#connection[data-state='live']")
        yield session
    finally:
        await context.close()


@asynccontextmanager
async def open_dashboard(url: str, *, width: int = 1500, height: int = 900) -> AsyncIterator[Browser]:
    async with launch_chromium() as chromium, dashboard_in(chromium, url, width=width, height=height) as session:
        yield session


# Modules that share one Chromium: `pytestmark = pytest.mark.asyncio(loop_scope="module")` and
# `from tests.browser import chromium, inspector, client`; every test still gets its own inspector.


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chromium() -> AsyncIterator[Chromium]:
    async with launch_chromium() as browser:
        yield browser


@pytest_asyncio.fixture(loop_scope="module")
async def inspector(settings: Settings) -> AsyncIterator[Inspector]:
    async with running_inspector(settings) as server:
        yield server


@pytest_asyncio.fixture(loop_scope="module")
async def client(inspector: Inspector) -> AsyncIterator[Client]:
    async with grpc_client(inspector) as session:
        yield session


def tiny_png(width: int = 2, height: int = 2) -> bytes:
    """A valid RGB PNG, built by hand."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x20\xb2\x6c" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


@pytest_asyncio.fixture(loop_scope="module")
async def http(inspector: Inspector) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(inspector) as session:
        yield session
