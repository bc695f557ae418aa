"""The real Tyk Gateway as the oracle (docs/conformance.md).

Without a gateway binary the case modules are not collected: test_gateway.py's one test skips with
one line saying which module the Go proxy refused (or that none was built) and how to run with
TYK_GATEWAY_BIN. Under CI=true a skip here is a failure, except that recorded refusal.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.conformance.harness import REFUSED, find_gateway

GATEWAY = find_gateway()
if GATEWAY.path is None:
    collect_ignore = ["test_cases.py", "test_generated.py", "test_catalog.py", "test_tracing.py"]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if os.environ.get("CI", "").lower() != "true" or not report.skipped:
        return report
    reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if REFUSED not in reason:
        report.outcome = "failed"
        report.longrepr = f"CI=true and a gateway test skipped: {reason}"
    return report


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from tests.conformance.environment import Environment

    if GATEWAY.path is None:
        pytest.skip(GATEWAY.reason)
    directory: Path = tmp_path_factory.mktemp("gateway")
    environment = Environment(GATEWAY, directory)
    try:
        yield environment
    finally:
        environment.stop()
