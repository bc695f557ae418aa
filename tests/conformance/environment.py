"""The suite's running system and its oracle: a request through the gateway, then the outcome checked against it."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.tyk.golang import canonical_header_key
from protogen import coprocess_object_pb2 as pb
from tests.conformance.harness import (
    Answer,
    Behaviour,
    ClientSaw,
    Gateway,
    GatewayBinary,
    InspectorProcess,
    Plugin,
    Upstream,
    auth_api,
    classic_api,
    deadline_wait,
    free_port,
    oas_api,
    send,
)
from tests.redis_server import RedisServer

REDACTED = "[redacted]"
# Headers the reverse proxy adds after the chain, which no Object shows: the client's address, and
# Go's transport asking for gzip when the client did not (docs/conformance.md).
PROXY_ADDED = frozenset({"X-Forwarded-For"})
TRANSPORT = frozenset({"Date"})
"""Response headers net/http writes itself, with values no model can know."""


@dataclass
class Case:
    """One named request through the gateway, and what the plugin answers for each hook."""

    name: str
    api: str = "keyless"
    method: str = "GET"
    path: str = "/anything?x=1"
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    hooks: dict[str, Behaviour] = field(default_factory=dict)
    """Behaviour per hook: pre, auth, postauth, post, response (echo when absent)."""
    answer: Answer = field(default_factory=Answer)


@dataclass
class Result:
    client: ClientSaw
    upstream: list[Any]
    calls: list[tuple[pb.Object, pb.Object | None]]
    details: list[dict[str, Any]]
    summaries: list[dict[str, Any]]
    events: list[str]
    mismatches: list[str]


DISABLED_PRE = {"driver": "grpc", "pre": [{"name": "nohook_pre", "disabled": True}], "post": [{"name": "nohook_post"}]}
"""An API whose Pre hook is disabled: only its Post hook is called."""
EMPTY_DRIVER = {"driver": "", "pre": [{"name": "nodriver_pre"}]}
"""An API with a hook but no driver: the gateway calls no plugin for it."""


class Environment:
    APIS = ("keyless", "auth", "authx", "rewrite", "noresp")

    def __init__(self, binary: GatewayBinary, directory: Path) -> None:
        self.version = binary.version
        self.redis = RedisServer(directory / "redis-data")
        (directory / "redis-data").mkdir()
        self.redis.start()
        self.upstream = Upstream().__enter__()
        self.plugin = Plugin()
        self.plugin.server.start()
        # The gateway's port is chosen first: the inspector reads its catalog (tests/conformance/test_catalog.py).
        gateway_port = free_port()
        self.inspector = InspectorProcess(
            self.plugin.port, binary.version, directory / "inspector.log", f"http://127.0.0.1:{gateway_port}"
        )
        port = self.upstream.port
        rewrite = {
            "url_rewrites": [
                {"path": "/rewrite", "method": "GET", "match_pattern": "/rewrite(.*)", "rewrite_to": "/rewritten$1"}
            ]
        }
        apis = [
            classic_api("keyless", port),
            auth_api("auth", port),
            auth_api("authx", port, id_extractor=True),
            classic_api("rewrite", port, extended=rewrite),
            classic_api("noresp", port, middleware={"driver": "grpc", "pre": [{"name": "noresp_pre"}]}),
            classic_api("nohook", port, middleware=DISABLED_PRE, extra={"name": "Disabled Pre API"}),
            classic_api("nodriver", port, middleware=EMPTY_DRIVER, extra={"name": "Empty Driver API"}),
        ]
        oas = [oas_api("oas", port)]
        self.gateway = Gateway(
            binary, directory / "gw", self.redis.port, self.inspector.grpc_port, apis, oas, port=gateway_port
        )

    def stop(self) -> None:
        for stop in (self.gateway.stop, self.inspector.stop, lambda: self.plugin.server.stop(0), self.redis.stop):
            with contextlib.suppress(Exception):  # stop the rest whatever one of them does
                stop()
        self.upstream.__exit__()

    def run(self, case: Case) -> Result:
        behaviours = {f"{case.api}_{hook}": fn for hook, fn in case.hooks.items()}
        self.plugin.reset(behaviours)
        self.upstream.received = []
        self.upstream.answer = case.answer
        newest = self.inspector.newest_id()
        path = f"/{case.api}{case.path}"
        client = send(self.gateway, case.method, path, case.headers, case.body)
        calls = list(self.plugin.calls)
        summaries = deadline_wait(
            lambda: found if len(found := self._dispatches(newest)) >= len(calls) else None,
            10,
            f"{len(calls)} captures in the inspector",
        )
        details = [self.inspector.detail(s["id"]) for s in summaries]
        result = Result(client, list(self.upstream.received), calls, details, summaries, list(self.plugin.events), [])
        result.mismatches = oracle(result)
        return result

    def _dispatches(self, newest: int) -> list[dict[str, Any]]:
        return [c for c in self.inspector.captures_after(newest) if c["kind"] == "dispatch"]


# --- the oracle ---------------------------------------------------------------------------------------


def oracle(result: Result) -> list[str]:
    """Every way the outcomes the inspector shows differ from what the client and the upstream got."""
    problems: list[str] = []
    if len(result.details) != len(result.calls):
        problems.append(f"{len(result.calls)} plugin calls but {len(result.details)} captures")
    request_end: tuple[int, dict[str, Any]] | None = None
    last_continue: tuple[int, dict[str, Any]] | None = None
    response_outcome: tuple[int, dict[str, Any]] | None = None
    for index, (summary, detail) in enumerate(zip(result.summaries, result.details, strict=False)):
        outcome = detail["outcome"]
        if outcome is None:
            problems.append(f"capture {summary['id']} ({summary['hook_type']}) has no outcome")
            continue
        if summary["outcome_status"] != outcome["status"]:
            problems.append(
                f"{summary['hook_type']}: the list says {summary['outcome_status']!r}, the detail {outcome['status']!r}"
            )
        if summary["hook_type"] == "Response":
            response_outcome = (index, outcome)
        elif request_end is not None and summary["hook_type"] == "PostKeyAuth" and outcome["result"] == "continue":
            pass  # the key checks after CustomKeyCheck run after the PostKeyAuth hooks (its outcome notes it)
        elif outcome["result"] == "continue":
            last_continue = (index, outcome)
        else:
            request_end = (index, outcome)
    if request_end is not None:
        index, outcome = request_end
        later = [s["hook_type"] for s in result.summaries[index + 1 :]]
        key_check = (outcome["client_response"] or {}).get("source") == "key check"
        if later and not (key_check and set(later) == {"PostKeyAuth"}):
            problems.append(f"{result.summaries[index]['hook_type']} ended the chain, but {later} were called")
        if result.upstream:
            problems.append(f"the outcome says the chain stops, but the upstream got {result.upstream[0].target}")
        problems += _client(outcome, result, None)
        return problems
    if last_continue is not None:
        index, outcome = last_continue
        reply = result.calls[index][1] if index < len(result.calls) else None
        problems += _upstream(outcome["upstream_request"], result, reply, outcome["notes"])
    if response_outcome is not None:
        index, outcome = response_outcome
        reply = result.calls[index][1] if index < len(result.calls) else None
        problems += _client(outcome, result, reply)
    elif not result.client.dropped and result.upstream and last_continue is not None:
        problems += _proxied(result)
    return problems


def _pairs(headers: list[Any], skip: frozenset[str]) -> list[tuple[str, str]]:
    return sorted((canonical_header_key(n), v) for n, v in headers if canonical_header_key(n) not in skip)


def _same_headers(predicted: list[tuple[str, str]], actual: list[tuple[str, str]]) -> bool:
    if len(predicted) != len(actual):
        return False
    return all(p[0] == a[0] and (p[1] == a[1] or p[1] == REDACTED) for p, a in zip(predicted, actual, strict=True))


def _client(outcome: dict[str, Any], result: Result, reply: pb.Object | None) -> list[str]:
    client = result.client
    if outcome["result"] == "dropped":
        return [] if client.dropped else [f"predicted a dropped connection, the client got {client.status}"]
    if client.dropped:
        return [f"predicted {outcome['status']}, the connection was dropped"]
    response = outcome["client_response"]
    problems = []
    if response["status"] != client.status:
        problems.append(f"status: predicted {response['status']}, the client got {client.status}")
    predicted = _pairs(response["headers"], TRANSPORT)
    actual = _pairs(client.headers, TRANSPORT)
    if not _same_headers(predicted, actual):
        problems.append(f"client headers: predicted {predicted}, got {actual}")
    if response["body"] is not None:
        if response["body"].encode() != client.body:
            problems.append(f"client body: predicted {response['body']!r}, got {client.body!r}")
    elif reply is not None and reply.response.raw_body != client.body:
        problems.append(f"client body: the reply's raw_body {reply.response.raw_body!r}, got {client.body!r}")
    if response["body_size"] != len(client.body):
        problems.append(f"body size: predicted {response['body_size']}, got {len(client.body)}")
    return problems


def _upstream(predicted: dict[str, Any], result: Result, reply: pb.Object | None, notes: list[str]) -> list[str]:
    if not result.upstream:
        return [f"predicted {predicted['method']} {predicted['url']} upstream, the upstream got nothing"]
    got = result.upstream[0]
    problems = []
    if len(result.upstream) > 1:
        problems.append(f"the upstream got {len(result.upstream)} requests")
    if predicted["method"] != got.method:
        problems.append(f"upstream method: predicted {predicted['method']}, got {got.method}")
    # A Post hook's Object cannot show a relative URL rewrite that keeps the query: the outcome says so
    # (a note), and then the url as the hook returned it is what the gateway sends when one is active.
    unknown = any("url_rewrites" in note for note in notes)
    returned = reply.request.url if reply is not None else None
    if predicted["url"] != got.target and not (unknown and got.target == returned):
        problems.append(f"upstream url: predicted {predicted['url']}, got {got.target}")
    want = _pairs(predicted["headers"], frozenset())
    have = _pairs(got.headers, PROXY_ADDED)
    if not _same_headers(want, have):
        problems.append(f"upstream headers: predicted {want}, got {have}")
    if predicted["body_size"] != len(got.body):
        problems.append(f"upstream body size: predicted {predicted['body_size']}, got {len(got.body)}")
    if reply is not None and reply.request.raw_body != got.body:
        problems.append(f"upstream body: the reply's raw_body {reply.request.raw_body!r}, got {got.body!r}")
    return problems


def _proxied(result: Result) -> list[str]:
    """No Response hook: the client gets the upstream's answer (the model makes no claim beyond that)."""
    return []
