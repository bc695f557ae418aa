"""Whether the suite has a gateway to run against: one line when it does not (docs/conformance.md)."""

from __future__ import annotations

import pytest

from tests.conformance.conftest import GATEWAY


def test_a_tyk_gateway_is_available() -> None:
    if GATEWAY.path is None:
        pytest.skip(GATEWAY.reason)
    assert GATEWAY.path.is_file()
