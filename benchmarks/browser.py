"""Browser suite: the dashboard in Debian's Chromium under load (Playwright, no browser download)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
from playwright.sync_api import Page, sync_playwright

from benchmarks.procs import ROOT, Server, loadgen, pin_process

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


# Applies a filter as typing does (an input event) and resolves when the list shows its answer.
TYPE_FILTER = """async (q) => {
  const box = document.getElementById('search');
  const started = performance.now();
  box.value = q;
  box.dispatchEvent(new Event('input', { bubbles: true }));
  await new Promise((done) => {
    const wanted = q ? JSON.stringify({ q }) : "{}";
    const check = () => (window.tykInspector.state.appliedFilter === wanted ? done() : setTimeout(check, 1));
    check();
  });
  await new Promise((done) => requestAnimationFrame(() => done()));
  return performance.now() - started;
}"""

# Opens a capture and resolves once its detail (the body viewer, for a body) is on screen.
SHOW_CAPTURE = """async ([id, selector]) => {
  const started = performance.now();
  location.hash = `#capture=${id}`;
  await new Promise((done) => {
    const check = () => {
      const head = document.querySelector('.detail-head p');
      if (head && head.textContent.startsWith(`#${id} `) && document.querySelector(selector)) done();
      else setTimeout(check, 1);
    };
    check();
  });
  await new Promise((done) => requestAnimationFrame(() => done()));
  return performance.now() - started;
}"""


def _big_json_object(size: int) -> bytes:
    """A Post hook Object whose request body is about `size` bytes of JSON (an array of records)."""
    from protogen import coprocess_common_pb2 as common
    from protogen import coprocess_object_pb2 as pb

    count = size // 77  # each record is about 77 bytes of JSON
    items = [{"id": i, "sku": f"SKU-{i:06d}", "price": i * 1.25, "tags": ["a", "b"]} for i in range(count)]
    body = json.dumps({"items": items}).encode()
    obj = pb.Object(hook_type=common.Post, hook_name="BigBody")
    obj.request.method = "POST"
    obj.request.url = "/orders-api/v1/bulk"
    obj.request.raw_body = body
    obj.spec["APIID"] = "bench-api"
    return obj.SerializeToString()


def _dispatch(target: str, payload: bytes) -> None:
    with grpc.insecure_channel(target) as channel:
        channel.unary_unary("/coprocess.Dispatcher/Dispatch")(payload, timeout=30)


def _filter_and_body(page: Page, target: str, listed: int, runs: int) -> dict[str, Any]:
    """Typing a filter over the buffer, and showing a 1.2 MB JSON body, each against a baseline."""
    # Baseline: resetting the filter (no server round trip); then a field term matching nothing,
    # one matching every capture (the buffer holds Post hooks) and a body search, each answered
    # by the server over every capture in the buffer.
    figures: dict[str, Any] = {}
    resets = []
    queries = (
        ("filter_field_ms", "hook:pre"),
        ("filter_all_ms", "hook:post"),
        ("filter_text_ms", "body:nomatch-anywhere"),
    )
    for name, query in queries:
        samples = []
        for _ in range(runs):
            samples.append(float(page.evaluate(TYPE_FILTER, query)))
            resets.append(float(page.evaluate(TYPE_FILTER, "")))
        figures[name] = round(statistics.median(samples), 1)
    figures["filter_reset_ms"] = round(statistics.median(resets), 1)
    figures["filter_over"] = listed

    small = int(page.evaluate("window.tykInspector.state.all[0].id"))
    _dispatch(target, _big_json_object(1_200_000))
    page.wait_for_function("n => window.tykInspector.state.lastId >= n", arg=listed + 1, timeout=30_000)
    big = int(page.evaluate("window.tykInspector.state.lastId"))
    # The stream's id arrives before its summary is in the list (it lands on the next frame).
    page.wait_for_function("id => window.tykInspector.state.byKey.has(String(id))", arg=big, timeout=30_000)
    size = int(page.evaluate("id => window.tykInspector.state.byKey.get(String(id)).size", big))
    show_small, show_big = [], []
    for _ in range(runs):
        show_small.append(float(page.evaluate(SHOW_CAPTURE, [small, ".tab-panel"])))
        # A capture shown before comes from the page's cache: evict it so each run fetches it again.
        page.evaluate("id => window.tykInspector.forget(id)", big)
        show_big.append(float(page.evaluate(SHOW_CAPTURE, [big, ".body-viewer .json-tree"])))
    figures["small_detail_ms"] = round(statistics.median(show_small), 1)
    figures["big_body_ms"] = round(statistics.median(show_big), 1)
    figures["big_body_bytes"] = size
    figures["big_body_dom_nodes"] = int(page.evaluate("document.querySelectorAll('#detail *').length"))
    return figures


FLOOD_RATE = 10_000


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _pin_apart(inspector: Server) -> bool:
    """Chromium's processes on one CPU; the inspector and what this process starts next on another."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return False
    browser_cpu, other_cpu = cpus[-1], cpus[0]
    for pid in _descendants(os.getpid()):
        with contextlib.suppress(OSError):  # a process that just ended
            if "chrom" in Path(f"/proc/{pid}/comm").read_text():
                pin_process(pid, browser_cpu)
    inspector.pin(other_cpu)
    os.sched_setaffinity(0, {other_cpu})  # the load generator starts from here
    return True


def _stream_phase(page: Page, target: str, rate: int, seconds: float) -> dict[str, Any]:
    """Frame times while captures stream in at `rate` (open loop), and how soon the page then shows the newest."""
    page.evaluate(FRAME_PROBE)
    started = time.perf_counter()
    load = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.loadgen", target, "--payload-bytes", "2048",
         "--concurrency", "64", "--seconds", str(seconds), "--rate", str(rate)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    out, _ = load.communicate(timeout=120)
    ended = time.perf_counter()
    last_id = int(page.evaluate("fetch('/api/stats').then((r) => r.json()).then((s) => s.last_id)"))
    # Caught up: the newest capture's row is drawn (the list follows the tail in time order).
    page.wait_for_selector(f"#list .row[data-id='{last_id}']", state="attached", timeout=30_000)
    caught_up_ms = round((time.perf_counter() - ended) * 1000)
    frames = [float(x) for x in page.evaluate("window.__frames")]
    newest_in_view = bool(
        page.evaluate(
            """id => {
              const row = document.querySelector(`#list .row[data-id='${id}']`);
              const list = document.getElementById('list').getBoundingClientRect();
              const box = row.getBoundingClientRect();
              return box.top >= list.top - 1 && box.bottom <= list.bottom + 1;
            }""",
            last_id,
        )
    )
    return {
        "streamed": int(json.loads(out.strip().splitlines()[-1])["calls"]),
        "seconds": ended - started,
        "frames": frames,
        "long_tasks": int(page.evaluate("window.__longTasks")),
        "caught_up_ms": caught_up_ms,
        "newest_row_shown": newest_in_view,
    }


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))] if ordered else float("nan")


def browser(quick: bool) -> dict[str, Any]:
    listed = 2_000 if quick else 10_000
    stream_seconds = 0.5 if quick else 5.0
    rate = 1000
    inspector = Server.inspector("--buffer-items", str(listed * 3))
    affinity = os.sched_getaffinity(0)
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
            # The same wait measured in the page: from navigation start until the rows are drawn.
            list_ms = float(page.evaluate("performance.now()"))
            figures = _filter_and_body(page, inspector.grpc_target, listed, 2 if quick else 7)

            # 2. Frame times of the idle page (the baseline), then while 1,000 captures/s stream in,
            # then at 10,000/s offered (more than this machine's gRPC can deliver: the page must
            # keep following the tail of whatever arrives).
            page.evaluate(FRAME_PROBE)
            page.wait_for_timeout(stream_seconds * 1000)
            idle = [float(x) for x in page.evaluate("window.__frames")]
            steady = _stream_phase(page, inspector.grpc_target, rate, stream_seconds)
            # Two cores cannot run a gateway's load, the inspector and a browser at full tilt: the
            # browser would starve, as it would not on a developer's machine beside a busy gateway.
            # Chromium gets one CPU, the inspector and the load generator the other.
            pinned = _pin_apart(inspector)
            flood = _stream_phase(page, inspector.grpc_target, FLOOD_RATE, stream_seconds)
            chromium.close()
    finally:
        os.sched_setaffinity(0, affinity)
        inspector.stop()
    frames, sent, long_tasks = steady["frames"], steady["streamed"], steady["long_tasks"]
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
        "flood": {
            "pinned": pinned,
            "offered_rate": FLOOD_RATE,
            "streamed": flood["streamed"],
            "delivered_rate": round(flood["streamed"] / flood["seconds"]),
            "frame_p99_ms": round(_percentile(flood["frames"], 0.99), 1),
            "frame_max_ms": round(max(flood["frames"] or [0]), 1),
            "long_tasks": flood["long_tasks"],
            "caught_up_ms": flood["caught_up_ms"],
            "newest_row_shown": flood["newest_row_shown"],
        },
        "list_ms_in_page": round(list_ms, 1),
        **figures,
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
    f = result["flood"]
    print(
        f"  {f['streamed']} captures streamed at {f['offered_rate']}/s offered ({f['delivered_rate']}/s delivered): "
        f"frame p99 {f['frame_p99_ms']} ms, max {f['frame_max_ms']} ms, {f['long_tasks']} long tasks; the page "
        f"drew the newest capture's row {f['caught_up_ms']} ms after the last call (in view: "
        f"{f['newest_row_shown']})"
    )
    print(
        f"  filter typed over {listed} captures: field term {result['filter_field_ms']} ms (matching all: "
        f"{result['filter_all_ms']} ms), body search "
        f"{result['filter_text_ms']} ms (reset, no round trip: {result['filter_reset_ms']} ms; "
        f"x{result['filter_field_ms'] / max(result['filter_reset_ms'], 0.1):.1f})"
    )
    print(
        f"  a {result['big_body_bytes'] / 1e6:.1f} MB JSON body shown in {result['big_body_ms']} ms "
        f"({result['big_body_dom_nodes']} DOM nodes in the detail); a small capture {result['small_detail_ms']} ms "
        f"(x{result['big_body_ms'] / max(result['small_detail_ms'], 0.1):.1f})"
    )
    return result
