"""`make bench-quick` as a smoke test: it completes and writes well-formed results. No timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.bench
def test_quick_benchmark_run_produces_results(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "latest.json").read_text())
    assert results["quick"] is True and results["machine"]["cpus"] >= 1

    servers = {cell["server"] for cell in results["dispatch"]["cells"]}
    assert servers == {"baseline-raw", "baseline-typed", "baseline-seed", "inspector", "inspector+2sse", "defaults"}
    for cell in results["dispatch"]["cells"]:
        assert cell["calls"] > 0 and cell["errors"] == 0 and cell["qps"] > 0
    for ratio in results["dispatch"]["ratios"]:
        assert ratio["qps_vs_typed"] > 0 and ratio["qps_vs_raw"] > 0
    assert all(client["complete"] for client in results["dispatch"]["sse_clients"])
    headline = results["at_defaults"]
    assert set(headline["cells"]) == {"baseline-typed", "baseline-seed", "inspector", "defaults", "intercept"}
    assert all(cell["errors"] == 0 and cell["qps"] > 0 for cell in headline["cells"].values())
    assert headline["ratios"]["baseline-typed"]["qps_vs_floor"] == 1.0
    assert headline["ratios"]["baseline-typed"]["paired_qps_vs_floor"] == 1.0
    assert headline["ratios"]["defaults"]["paired_qps_vs_seed"] > 0

    for run in results["sse"]["runs"]:
        assert run["complete"], "every capture reached every SSE client"
    scaling = results["stream_scaling"]["cells"]
    assert [c["readers"] for c in scaling] == [0, 2] and all(c["calls"] > 0 and c["all_told"] for c in scaling)
    memory = results["memory"]
    assert memory["captures_sent"] > 0 and memory["buffered_bytes"] <= memory["buffer_bytes"]
    assert results["export"]["bytes"] > 0
    assert all(run["proxied"]["calls"] > 0 for run in results["proxy"]["runs"])
    page = results["browser"]
    assert page["seconds_to_list"] > 0 and page["frames"] > 0 and page["streamed"] > 0
    assert page["flood"]["streamed"] > 0 and page["flood"]["caught_up_ms"] >= 0
    store = results["redis-store"]
    assert all(cell["errors"] == 0 and cell["qps"] > 0 for cell in store["cells"].values())
    ratios = store["ratios"]
    assert store["dropped"] == 0 and ratios["redis_qps_vs_memory_c64"] > 0 and ratios["two_replicas_qps_vs_one_c64"] > 0
    assert results["redis-sse"]["complete"] and results["redis-sse"]["errors"] == 0
    assert results["metrics-counting"]["plain_ints_ns"] > 0
    assert "x typed" in done.stdout  # the printed table carries the ratios
