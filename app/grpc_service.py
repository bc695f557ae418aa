"""The coprocess.Dispatcher service Tyk Gateway calls, and the gRPC server that hosts it.

Dispatch is on the gateway's request path, so it does as little as possible:
the handler receives the raw request bytes (no deserializer), parses them once
with the C protobuf parser to read a few summary fields, hands a Capture to the
recorder and returns the very same bytes. Nothing is re-serialized, converted to
JSON or written anywhere before the gateway has its answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from app.capture.record import Capture, Recorder, summarize_event, summarize_object
from app.config import Settings
from app.formats.offload import Offloader
from app.proxy.faults import UNDECODABLE_REPLY, Fault, oversize
from app.proxy.intercept import Decision, Interceptor, Point
from app.proxy.mock import mock_reply
from app.proxy.rules import Rule, Rules
from app.proxy.shadow import Shadow
from app.proxy.tagging import tagged_reply
from app.proxy.upstream import UpstreamPool
from app.reading import read_off_loop
from app.tyk.protocol import EMPTY_EVENT_REPLY, SERVICE_NAME
from protogen import coprocess_object_pb2 as pb

log = logging.getLogger(__name__)


# A rule that cannot be matched is logged at most this often (each call is captured with the reason).
RULE_ERROR_LOG_SECONDS = 10.0

# gRPC's own and transport headers are not the gateway's to pass on.
_NOT_FORWARDED = frozenset({"user-agent", "content-type", "te", "host", "authority"})


def forwardable(metadata: tuple[tuple[str, str | bytes], ...]) -> tuple[tuple[str, str], ...]:
    """The gateway's metadata (e.g. traceparent) that an upstream plugin server should see too."""
    return tuple(
        (k, v)
        for k, v in metadata
        if isinstance(v, str) and not k.startswith(("grpc-", ":")) and k not in _NOT_FORWARDED
    )


def upstream_deadline(rule: Rule, context: grpc.aio.ServicerContext) -> float | None:
    """The upstream call lasts as long as the gateway's own call may: its remaining deadline, if any.

    The gateway sets no deadline of its own, so by default there is none; a rule's
    `deadline_seconds` is an explicit choice that can only shorten it (docs/proxy.md).
    """
    remaining: float | None = context.time_remaining()
    if rule.deadline_seconds is None:
        return remaining
    return rule.deadline_seconds if remaining is None else min(remaining, rule.deadline_seconds)


def _read_object(capture: Capture) -> None:
    summarize_object(capture, pb.Object.FromString(capture.request))


def _read_event(capture: Capture) -> None:
    summarize_event(capture, pb.Event.FromString(capture.request))


class DispatcherService:
    """Answers Dispatch and DispatchEvent (echo, mock or an upstream plugin server) and records every call."""

    def __init__(
        self,
        record: Recorder,
        rules: Rules | None = None,
        upstreams: UpstreamPool | None = None,
        max_inflight_bytes: int | None = None,
        tag_requests: bool = False,
        offloader: Offloader | None = None,
    ) -> None:
        self._record = record
        self.offloader = offloader or Offloader()
        """Where a large message is parsed (app.reading): the other calls keep the loop."""
        self.tag_requests = tag_requests
        """Add the correlation header to Pre hooks the inspector answers (app.proxy.tagging)."""
        self.rules = rules
        """Replaced as a whole when the rules file changes; None: echo everything."""
        self._upstreams = upstreams
        self.max_inflight_bytes = max_inflight_bytes
        """Message bytes held by calls not answered yet; None: no bound."""
        self.inflight_bytes = 0
        self.inflight_calls = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.stopping = False
        """Set when the server stops: calls cancelled from here on were cut off by the shutdown."""
        self.shadow: Shadow | None = None
        """--shadow: answered Dispatch calls go to it once the gateway has its answer; it records them."""
        self.rule_errors = 0
        """Calls the rules could not route (a match failed or ran out of time): the default answered them."""
        self._rule_error_logged = float("-inf")
        self.intercept: Interceptor | None = None
        """Set while an intercept query is: matching Dispatch calls are held (app.proxy.intercept)."""

    async def dispatch(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        capture = Capture(kind="dispatch", request=request, reply=request)
        return await self._handle(capture, context, "Dispatch", _read_object)

    async def dispatch_event(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        # The gateway fires events from a goroutine and ignores the reply, so
        # reading the JSON payload here costs no API request any latency.
        capture = Capture(kind="event", request=request, reply=EMPTY_EVENT_REPLY)
        return await self._handle(capture, context, "DispatchEvent", _read_event)

    async def _handle(
        self, capture: Capture, context: grpc.aio.ServicerContext, method: str, read: Callable[[Capture], None]
    ) -> bytes:
        started = time.perf_counter_ns()
        capture.peer = context.peer()
        capture.metadata = tuple(context.invocation_metadata() or ())
        held = len(capture.request)
        if (
            self.max_inflight_bytes is not None
            and self.inflight_calls
            and self.inflight_bytes + held > self.max_inflight_bytes
        ):
            # Refused before anything else is held for it; the gateway may retry. Not
            # captured: a flood of refusals must not push real captures out of the buffer.
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"the inspector already holds {self.inflight_bytes} bytes of unanswered calls; this "
                f"{held}-byte call would pass --max-inflight-bytes ({self.max_inflight_bytes}): retry "
                "later or raise --max-inflight-bytes",
            )
        self.inflight_bytes += held
        self.inflight_calls += 1
        self._idle.clear()
        try:
            try:
                if capture.large:
                    await read_off_loop(capture, self.offloader)
                else:
                    read(capture)
            except DecodeError as exc:
                message = "Object" if method == "Dispatch" else "Event"
                await self._reject(capture, context, started, f"request is not a coprocess.{message}: {exc}")
            # With no intercept query this is the whole cost: one attribute read.
            intercept = self.intercept
            if intercept is not None and (capture.kind != "dispatch" or not intercept.matches(capture)):
                intercept = None
            rule = None
            if self.rules is not None:
                rule = await self._answer(capture, method, context, started, intercept)
            # A large message is not parsed again on the call path to add the tag (README.md, request journeys).
            tag = self.tag_requests and not capture.large
            if tag and capture.hook_type == "Pre" and capture.answered_by in ("echo", "mock"):
                capture.reply = tagged_reply(capture.reply)  # type: ignore[arg-type]  # set for Dispatch
            if (
                intercept is not None
                and "after" in intercept.points
                and capture.reply is not None
                and capture.answered_by not in ("fault", "intercept")
            ):
                decision = await self._hold(intercept, capture, "after", capture.reply)
                if decision is not None:
                    await self._apply(capture, decision, context, started)
        except asyncio.CancelledError:
            # The gateway went away, its deadline passed, or the server stopped: the call still happened.
            if capture.grpc_status is None:
                self._record_unanswered(capture, context, started)
            raise
        finally:
            self.inflight_bytes -= held
            self.inflight_calls -= 1
            if not self.inflight_calls:
                self._idle.set()
        capture.duration_ns = time.perf_counter_ns() - started
        capture.grpc_status = "OK"
        # Recording may strip a capture too large for the buffer: the gateway gets the reply
        # as it was before recording, never what the store made of it.
        reply = capture.reply
        assert reply is not None  # _answer aborts rather than leave None
        shadow = self.shadow
        target = (rule.shadow if rule is not None else None) or (shadow.config.target if shadow else None)
        if shadow is not None and target and capture.kind == "dispatch" and capture.hook_type:
            # Only once gRPC has finished the call: the shadow never costs the gateway time.
            metadata = forwardable(capture.metadata)
            context.add_done_callback(lambda _: shadow.after_answer(capture, metadata, target))
        else:
            self._record(capture)
        return reply

    async def wait_idle(self, seconds: float) -> bool:
        """Wait until no call is in a handler (cancelled ones included), at most `seconds`; True if none is."""
        try:
            await asyncio.wait_for(self._idle.wait(), seconds)
        except TimeoutError:
            return False
        return True

    def _record_unanswered(self, capture: Capture, context: grpc.aio.ServicerContext, started: int) -> None:
        remaining = context.time_remaining()
        timed_out = remaining is not None and remaining <= 0
        if timed_out:
            capture.grpc_status = "DEADLINE_EXCEEDED"
            note = "the caller's deadline passed before the reply was sent"
        elif self.stopping:
            # grpc.aio cancels what is left when the grace period ends; the caller gets UNAVAILABLE.
            capture.grpc_status = "UNAVAILABLE"
            note = "cancelled before the reply was sent: the inspector stopped (--shutdown-grace was over)"
        else:
            capture.grpc_status = "CANCELLED"
            note = "cancelled before the reply was sent: the caller went away"
        capture.error = f"{capture.error}; {note}" if capture.error else note
        capture.reply = None
        capture.duration_ns = time.perf_counter_ns() - started
        self._record(capture)

    async def _hold(self, intercept: Interceptor, capture: Capture, point: Point, message: bytes) -> Decision | None:
        """Hold the call (app.proxy.intercept); its held bytes count against --max-inflight-bytes."""
        extra = 0 if message is capture.request else len(message)
        if self.max_inflight_bytes is not None and self.inflight_bytes + extra > self.max_inflight_bytes:
            intercept.passed_over += 1
            return None
        self.inflight_bytes += extra
        try:
            return await intercept.hold(capture, point, message)
        finally:
            self.inflight_bytes -= extra

    async def _apply(
        self, capture: Capture, decision: Decision, context: grpc.aio.ServicerContext, started: int
    ) -> None:
        """What a held call's decision makes of its reply: the edited or preset Object, or a gRPC error."""
        if decision.action == "fail":
            assert decision.code is not None
            capture.reply = None
            capture.answered_by = "intercept"
            capture.grpc_status = decision.code.name
            note = f"failed while held: {decision.code.name}: {decision.details}"
            capture.error = f"{capture.error}; {note}" if capture.error else note
            capture.duration_ns = time.perf_counter_ns() - started  # the hold included
            self._record(capture)
            await context.abort(decision.code, decision.details)
        if decision.message is not None:
            capture.reply = decision.message
            if decision.action == "respond":
                capture.answered_by = "intercept"

    async def _answer(
        self,
        capture: Capture,
        method: str,
        context: grpc.aio.ServicerContext,
        started: int,
        intercept: Interceptor | None = None,
    ) -> Rule:
        """Set the capture's reply as the matching rule says: echo, mock or upstream; the rule."""
        assert self.rules is not None
        routing = self.rules.select(capture)
        rule = routing.rule
        capture.rule = rule.name
        if routing.error is not None:
            # The call is answered all the same (by the default); the capture and /metrics say why.
            self.rule_errors += 1
            capture.error = routing.error
            now = time.monotonic()
            if now >= self._rule_error_logged + RULE_ERROR_LOG_SECONDS:  # a broken rule fails every call: log a few
                self._rule_error_logged = now
                log.warning("%s (%d such calls so far)", routing.error, self.rule_errors)
        # A fault is the rules file's own request to fail or delay a call, so it is not a rule error.
        fault = rule.fault if rule.fault is not None and rule.fault.strikes() else None
        if fault is not None and await self._fault(capture, fault, context, started):
            return rule
        if rule.action == "mock" and rule.mock is not None:
            if capture.kind == "dispatch":
                capture.reply = mock_reply(capture.request, rule.mock)
            capture.answered_by = "mock"
        elif rule.action == "upstream" and rule.upstream and self._upstreams is not None:
            request = capture.request
            if intercept is not None and "before" in intercept.points and capture.kind == "dispatch":
                decision = await self._hold(intercept, capture, "before", request)
                if decision is not None and decision.action != "continue":
                    # Answered without the plugin server: a preset or an Object of the viewer's, or an error.
                    await self._apply(capture, decision, context, started)
                    return rule
                if decision is not None and decision.message is not None:
                    request = decision.message  # the edited Object goes to the plugin server
            await self._forward(capture, rule, method, context, started, request)
        if fault is not None and fault.oversize and capture.reply is not None:
            capture.reply = oversize(capture.reply)
        return rule

    async def _fault(self, capture: Capture, fault: Fault, context: grpc.aio.ServicerContext, started: int) -> bool:
        """Delay, then fail or drop the call as the rule's fault says; True when the fault is the answer."""
        capture.fault = fault.label
        if fault.delay_seconds:
            await asyncio.sleep(fault.delay_seconds)  # the point of the fault: the gateway waits
        if fault.drop:
            capture.reply = UNDECODABLE_REPLY
            capture.answered_by = "fault"
            return True
        if fault.fail is not None:
            capture.answered_by = "fault"
            capture.reply = None
            capture.grpc_status = fault.fail.name
            capture.error = f"fault injected: {fault.fail.name}: {fault.details}"
            capture.duration_ns = time.perf_counter_ns() - started  # the delay included
            self._record(capture)
            await context.abort(fault.fail, fault.details)
        return False

    async def _forward(
        self,
        capture: Capture,
        rule: Rule,
        method: str,
        context: grpc.aio.ServicerContext,
        started: int,
        request: bytes | None = None,
    ) -> None:
        assert rule.upstream is not None and self._upstreams is not None
        capture.upstream = rule.upstream
        began = time.perf_counter()
        try:
            capture.reply = await self._upstreams.call(
                rule.upstream,
                method,
                capture.request if request is None else request,
                upstream_deadline(rule, context),
                forwardable(capture.metadata),
            )
            capture.upstream_status = "OK"
            capture.answered_by = "upstream"
        except grpc.aio.AioRpcError as exc:
            capture.upstream_status = exc.code().name
            failure = f"upstream {rule.upstream}: {exc.code().name}: {exc.details()}"
            capture.error = f"{capture.error}; {failure}" if capture.error else failure  # a rule error stays
            if rule.on_error == "echo":
                capture.answered_by = "fallback"  # the echo (or empty EventReply) stands
            else:
                # As if the inspector were not there: the gateway sees the plugin server's error.
                capture.answered_by = "upstream"
                capture.reply = None
                capture.grpc_status = exc.code().name
                capture.upstream_ms = round((time.perf_counter() - began) * 1000, 3)
                # Recorded here, before the abort: the call lasted as long as the failing upstream took.
                capture.duration_ns = time.perf_counter_ns() - started
                self._record(capture)
                await context.abort(exc.code(), exc.details() or capture.error)
        finally:
            if capture.upstream_ms is None:  # a failure passed on was recorded (and timed) already
                capture.upstream_ms = round((time.perf_counter() - began) * 1000, 3)

    async def _reject(self, capture: Capture, context: grpc.aio.ServicerContext, started: int, details: str) -> None:
        """Keep the undecodable bytes for the user to look at, then fail the call."""
        capture.reply = None
        capture.error = details
        capture.grpc_status = "INVALID_ARGUMENT"
        capture.duration_ns = time.perf_counter_ns() - started
        self._record(capture)
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, details)

    def method_handlers(self) -> dict[str, grpc.RpcMethodHandler]:
        # No (de)serializers: handlers see and return wire bytes.
        return {
            "Dispatch": grpc.unary_unary_rpc_method_handler(self.dispatch),
            "DispatchEvent": grpc.unary_unary_rpc_method_handler(self.dispatch_event),
        }


class BindError(RuntimeError):
    """A listener could not be opened; the message names the setting to change."""


@dataclass(frozen=True, slots=True)
class GrpcListener:
    server: grpc.aio.Server
    health: health.aio.HealthServicer
    port: int | None
    """The bound TCP port (useful with port 0), or None when only a unix socket is used."""


def create_grpc_server(settings: Settings, service: DispatcherService) -> GrpcListener:
    """Build the gRPC server: Dispatcher, health and reflection, bound but not started.

    Call inside the running event loop (grpc.aio servers belong to the loop they are made in).
    """
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            ("grpc.so_reuseport", 0),
        ]
    )
    server.add_registered_method_handlers(SERVICE_NAME, service.method_handlers())
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )
    port = None
    if settings.grpc_address:
        port = _bind(server, settings.grpc_address, "--grpc-address / TYK_INSPECTOR_GRPC_ADDRESS")
    if settings.grpc_unix_socket:
        _bind(server, f"unix:{settings.grpc_unix_socket}", "--grpc-unix / TYK_INSPECTOR_GRPC_UNIX")
    return GrpcListener(server=server, health=health_servicer, port=port)


def _bind(server: grpc.aio.Server, address: str, setting: str) -> int:
    try:
        port: int = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise BindError(f"cannot listen for gRPC on {address} ({exc}); change {setting}") from None
    if port == 0 and not address.startswith("unix:"):
        raise BindError(f"cannot listen for gRPC on {address}; change {setting}")
    return port
