"""The hostile-input harness, scaled down: while a real gRPC client measures Dispatch latency,
generated and known-hostile input hits queries, imports, Objects and Events, metrics labels and
the login form. No 500, memory bounded, Dispatch latency within a small multiple of idle in the
same run (`make bench` runs the full sizes: benchmarks/hostile.py). The inspector and the
attack run in their own process, so this test's own loop measures nothing of itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from benchmarks.hostile import TARGET_P99_RATIO

# Measures latency: alone, so no other worker skews it.
pytestmark = pytest.mark.serial

ROOT = Path(__file__).resolve().parent.parent
RSS_BOUND_MIB = 600
# On 2 CPUs the inspector, its worker processes, the attacker and the sampler take turns on the cores:
# with an idle p99 near 1 ms the scheduler alone adds a few ms to the tail. The bound is 3x idle or idle
# plus this, whichever is larger, so a stall of the loop (tens to hundreds of ms) still fails the test;
# the full-size `make bench` suite records the plain ratio (docs/benchmarks.md).
SCHEDULING_ALLOWANCE_MS = 10.0
# Pieces the generated queries are made of: field names, regex syntax, wildcards, nesting.
QUERY_PIECES = ["body:", "h:", "path:", "/", "(", ")", "{255}", "{e<=1}", "*", "a", "(?=", "\\1", "+", " or ", "!", '"']


def generated_queries(count: int) -> list[str]:
    found: list[str] = []

    @settings(max_examples=count, database=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(st.lists(st.sampled_from(QUERY_PIECES), max_size=30).map("".join))
    def collect(query: str) -> None:
        found.append(query)

    collect()
    return found


def attack(surfaces: str, queries: list[str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.hostile", "test", surfaces],
        cwd=ROOT,
        input=json.dumps(queries),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_hostile_input_leaves_the_gateway_its_loop() -> None:
    result = attack("queries,bombs,messages,imports,logins,details", generated_queries(60))
    assert result["server_errors"] == [], result["statuses"]
    assert result["statuses"].get("bomb:400", 0) > 0 and result["statuses"].get("query:200", 0) > 0
    assert result["rss_mib_max"] < RSS_BOUND_MIB
    idle_p99 = result["idle"]["p99_ms"]
    assert result["attack"]["p99_ms"] <= max(TARGET_P99_RATIO * idle_p99, idle_p99 + SCHEDULING_ALLOWANCE_MS), result


def test_concurrent_costly_queries_share_one_loop_budget() -> None:
    # 32 requests each walking the buffer with a costly query: one budget for all of them, so
    # the gateway's calls keep their latency (32 per-request slices held p50 at 2.0 s before).
    result = attack("queries", [])
    assert result["server_errors"] == [] and result["statuses"].get("query:200", 0) > 0, result["statuses"]
    assert result["attack"]["p50_ms"] <= TARGET_P99_RATIO * result["idle"]["p50_ms"], result


def test_a_regex_bomb_is_a_400_while_dispatch_keeps_its_latency() -> None:
    result = attack("bombs", [])
    assert result["statuses"].get("bomb:400", 0) >= 6 and result["server_errors"] == [], result["statuses"]
    assert result["attack"]["p50_ms"] <= TARGET_P99_RATIO * result["idle"]["p50_ms"], result
