"""Where replay may connect: the configured plugin servers, loopback, and what --replay-allow adds.

Replay opens a gRPC connection to a target named in a web request; unchecked, the dashboard
would be a way to probe any host and port the inspector can reach (its errors tell what
listens there). Only plain HOST:PORT targets are considered: `unix:`, `dns:///` and other
gRPC target schemes need --replay-anywhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from app.config import is_loopback
from app.proxy.rules import Rules


class TargetRefused(ValueError):
    """Replay may not connect there; the message says what would allow it."""


def normalize(target: str) -> str:
    """'tcp://Host:50051' -> 'host:50051'; anything that is not HOST:PORT is returned lower-cased as it is."""
    return target.strip().removeprefix("tcp://").lower()


def _host_port(target: str) -> tuple[str, int] | None:
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host or "/" in host:
        return None  # a scheme (dns:, unix:, ipv4:) or an unbracketed IPv6 address
    return host, int(port)


@dataclass(frozen=True, slots=True)
class ReplayTargets:
    """The replay allow-list: --upstream, the rules' upstreams (as they are now), loopback, --replay-allow."""

    upstream: str | None = None
    allowed: tuple[str, ...] = ()
    anywhere: bool = False

    def check(self, target: str, rules: Rules | None) -> str:
        """The target to connect to, or TargetRefused."""
        if self.anywhere:
            return target
        wanted = normalize(target)
        address = _host_port(wanted)
        if address is None:
            raise TargetRefused(
                f"replay to {target!r} refused: only HOST:PORT targets are allowed "
                "(start the inspector with --replay-anywhere to allow other gRPC targets)"
            )
        if is_loopback(address[0]) or wanted in self._configured(rules):
            return target
        raise TargetRefused(
            f"replay to {target!r} refused: it is not --upstream, a rules upstream or on this machine. "
            "Allow it with --replay-allow HOST:PORT (or --replay-anywhere)."
        )

    def _configured(self, rules: Rules | None) -> set[str]:
        names: Iterable[str] = (*self.allowed, *([self.upstream] if self.upstream else []))
        configured = {normalize(n) for n in names}
        if rules is not None:
            configured |= {normalize(u) for u in rules.upstreams}
        return configured
