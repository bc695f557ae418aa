"""Browser suite: the dashboard in Debian's Chromium under load (Playwright, no browser download)."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
from typing import Any

from playwright.sync_api import sync_playwright

from benchmarks.procs import ROOT, Server, loadgen

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]  # fmt: skip

# Collects the time between animation frames, and long tasks, from inside the page.
FRAME_PROBE = """() => {
  window.__frames = [];
  window.__longTasks = 0;
  let last = performance.now();
  const tick = (now) => {
    window.__frames.push(now - last);
    last = now;
    if (window.__frames.length < 100000) requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
  new PerformanceObserver((list) => { window.__longTasks += list.getEntries().length; })
    .observe({ entryTypes: ["longtask"] });
}"""


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))] if ordered else float("nan")


def browser(quick: bool) -> dict[str, Any]:
    listed = 2_000 if quick else 10_000
    stream_seconds = 1.0 if quick else 5.0
    rate = 1000
    inspector = Server.inspector("--buffer-items", str(listed * 3))
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=ARGS
            )
            # bypass_csp: Playwright's polling evaluates code, which the page's CSP forbids.
            page = chromium.new_page(viewport={"width": 1440, "height": 900}, bypass_csp=True)

            # 1. A buffer of `listed` captures: time from navigation until all are listed.
            loadgen(inspector.grpc_target, 2048, 64, 600, max_calls=listed)
            started = time.perf_counter()
            page.goto(inspector.http_url)
            page.wait_for_function(
                "n => window.tykInspector && window.tykInspector.state.all.length >= n "
                "&& document.querySelectorAll('#list .row').length > 0",
                arg=listed,
                timeout=60_000,
            )
            load_seconds = time.perf_counter() - started

            # 2. Frame times of the idle page (the baseline), then while 1,000 captures/s stream in.
            page.evaluate(FRAME_PROBE)
            page.wait_for_timeout(stream_seconds * 1000)
            idle = [float(x) for x in page.evaluate("window.__frames")]
            page.evaluate(FRAME_PROBE)
            before = int(page.evaluate("window.tykInspector.state.all.length"))
            load = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.loadgen", inspector.grpc_target, "--payload-bytes", "2048",
                 "--concurrency", "64", "--seconds", str(stream_seconds), "--rate", str(rate)],
                cwd=ROOT, stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            out, _ = load.communicate(timeout=120)
            sent = int(json.loads(out.strip().splitlines()[-1])["calls"])
            page.wait_for_function("n => window.tykInspector.state.all.length >= n", arg=before + sent, timeout=30_000)
            frames = [float(x) for x in page.evaluate("window.__frames")]
            long_tasks = int(page.evaluate("window.__longTasks"))
            chromium.close()
    finally:
        inspector.stop()
    result: dict[str, Any] = {
        "listed": listed,
        "seconds_to_list": round(load_seconds, 3),
        "stream_rate": rate,
        "stream_seconds": stream_seconds,
        "streamed": sent,
        "frames": len(frames),
        "frame_p50_ms": round(_percentile(frames, 0.5), 1),
        "frame_p99_ms": round(_percentile(frames, 0.99), 1),
        "frame_max_ms": round(max(frames or [0]), 1),
        "frame_mean_ms": round(statistics.fmean(frames), 1) if frames else None,
        "long_tasks": long_tasks,
        "idle_frame_p50_ms": round(_percentile(idle, 0.5), 1),
        "idle_frame_p99_ms": round(_percentile(idle, 0.99), 1),
    }
    print(f"  {listed} captures listed {result['seconds_to_list']} s after navigation")
    print(
        f"  {sent} captures streamed at {rate}/s: frame p50 {result['frame_p50_ms']} ms, "
        f"p99 {result['frame_p99_ms']} ms, max {result['frame_max_ms']} ms, {long_tasks} long tasks (>50 ms); "
        f"idle page: frame p50 "
        f"{result['idle_frame_p50_ms']} ms, p99 {result['idle_frame_p99_ms']} ms "
        f"(p99 x{result['frame_p99_ms'] / max(result['idle_frame_p99_ms'], 0.1):.2f})"
    )
    return result
