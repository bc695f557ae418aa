"""Take the README's screenshot: one API request's journey across its hooks (docs/dashboard.png).

The traffic is what a gateway sends to an inspector in echo mode with the fake-login rule
(examples/apis/fake-login.yaml): the auth hook is answered with a session, as a real auth plugin
would, so the gateway goes on to the later hooks (an echoed auth reply would stop it with 403).

Usage: python scripts/screenshot.py   (or `make screenshot`); needs Debian's chromium.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import grpc
from google.protobuf import json_format
from playwright.async_api import async_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.config import Settings  # noqa: E402
from app.server import Inspector  # noqa: E402
from protogen import coprocess_object_pb2 as pb  # noqa: E402

EXAMPLES = ROOT / "examples"
HOOKS = ["pre.json", "custom-key-check.json", "post-key-auth.json", "post-json-body.json", "response-gzip.json"]
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip


async def main() -> None:
    rules = str(EXAMPLES / "apis" / "fake-login.yaml")
    inspector = Inspector(Settings(grpc_address="127.0.0.1:0", http_port=0, capture_log="off", rules_file=rules))
    await inspector.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{inspector.grpc_port}") as channel:
            dispatch = channel.unary_unary("/coprocess.Dispatcher/Dispatch")
            # Three API requests, each through all five hooks, as a gateway with OpenTelemetry sends
            # them: every hook call of one request carries the same traceparent trace id.
            for request in range(3):
                trace = f"00-{request + 1:032x}-{request + 1:016x}-01"
                for name in HOOKS:
                    obj = json_format.Parse((EXAMPLES / name).read_text(), pb.Object())
                    if name == "custom-key-check.json":  # each client with its own key
                        obj.request.headers["Authorization"] = f"Bearer key-of-user-{request + 1}"
                    elif name != "pre.json":  # after auth the gateway sends the session the auth hook made
                        obj.session.rate, obj.session.per = 100, 1
                        obj.session.metadata["token"] = obj.metadata["token"] = f"Bearer key-of-user-{request + 1}"
                    await dispatch(obj.SerializeToString(), metadata=(("traceparent", trace),))
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=ARGS
            )
            page = await browser.new_page(viewport={"width": 1440, "height": 860}, device_scale_factor=1)
            # Grouped by request, the newest request opened: its hook calls, and its journey beside them.
            await page.goto(f"{inspector.http_url}/?group=request")
            await page.click("#list .row[data-key='j11']")
            await page.wait_for_selector("#list .row.child")
            await page.click("#list .row[data-key='11-15']")
            await page.wait_for_selector(".detail-head h2:has-text('Response')")
            await page.click("button[data-tab='journey']")
            await page.wait_for_selector(".timeline .step")
            await page.screenshot(path=str(ROOT / "docs" / "dashboard.png"))
            await browser.close()
    finally:
        await inspector.stop()
    print("wrote docs/dashboard.png")


if __name__ == "__main__":
    asyncio.run(main())
