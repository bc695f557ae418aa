"""The per-API hooks view: each configured hook beside the calls seen for it, and why a hook never fires.

Every reason is one the definition (or the captures) shows; nothing is guessed. Pure: the web
layer walks the store in slices and hands the captures here.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError

from app.capture.record import Capture
from app.gateway.apidef import HOOK_ORDER, ApiDefinition, ConfiguredHook
from app.tyk.protocol import Object

# gRPC's default receive limit in the gateway: an Object carries a body twice (body and raw_body)
# unless raw_body_only, so a body of half of it already gets near.
GRPC_DEFAULT_LIMIT = 4 * 1024 * 1024
TWICE_NEAR_LIMIT = GRPC_DEFAULT_LIMIT // 2
# Durations kept per hook for the percentiles; the store is bounded, this bounds the report too.
MAX_DURATIONS = 10_000
MAX_UNKNOWN_APIS = 200
RESPONSE_SAMPLES = 3
_AUTH_ORDER = HOOK_ORDER.index("CustomKeyCheck")


@dataclass
class HookCalls:
    """What the captures show of one (API, hook type, hook name)."""

    calls: int = 0
    last_us: int = 0
    durations_ns: list[int] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    unimplemented: int = 0
    largest_request: int = 0

    def add(self, capture: Capture) -> None:
        self.calls += 1
        self.last_us = max(self.last_us, capture.received_us)
        if len(self.durations_ns) < MAX_DURATIONS:
            self.durations_ns.append(capture.duration_ns)
        self.outcomes[_outcome(capture)] += 1
        if capture.upstream_status == "UNIMPLEMENTED" or capture.grpc_status == "UNIMPLEMENTED":
            self.unimplemented += 1
        self.largest_request = max(self.largest_request, len(capture.request))

    def as_json(self) -> dict[str, Any]:
        ordered = sorted(self.durations_ns)
        return {
            "calls": self.calls,
            "last_seen_us": self.last_us or None,
            "p50_ms": _percentile_ms(ordered, 0.50),
            "p99_ms": _percentile_ms(ordered, 0.99),
            "outcomes": dict(self.outcomes.most_common()),
        }


@dataclass
class Usage:
    """The calls seen per (API ID, hook type, hook name), counted from the captures."""

    hooks: dict[tuple[str, str, str], HookCalls] = field(default_factory=dict)
    apis: Counter[str] = field(default_factory=Counter)
    last_us: dict[str, int] = field(default_factory=dict)
    response_samples: dict[str, list[bytes]] = field(default_factory=dict)
    """Per API: the newest few Response-hook Objects, to see whether the upstream streams."""
    streaming: set[str] = field(default_factory=set)
    """APIs whose upstream answered a server-sent event stream (found by `streaming_apis`)."""
    plugin_time: dict[str, list[int]] = field(default_factory=dict)
    """Per API: [ns in hooks, ns from the first hook's start to the last one's end, journeys]."""

    def add(self, capture: Capture) -> None:
        if capture.kind != "dispatch" or capture.replay_of is not None or capture.imported:
            return  # what the gateway itself called
        key = (capture.api_id, capture.hook_type, capture.hook_name)
        calls = self.hooks.get(key)
        if calls is None:
            calls = self.hooks[key] = HookCalls()
        calls.add(capture)
        if capture.hook_type == "Response" and capture.request:
            samples = self.response_samples.setdefault(capture.api_id, [])
            if len(samples) < RESPONSE_SAMPLES:
                samples.append(capture.request)
        self.apis[capture.api_id] += 1
        self.last_us[capture.api_id] = max(self.last_us.get(capture.api_id, 0), capture.received_us)

    def add_all(self, captures: Iterable[Capture]) -> None:
        for capture in captures:
            self.add(capture)

    def add_journey(self, api_id: str, steps: list[Capture]) -> None:
        """One API request's hook calls: how much of its time (first hook to last) went to plugins."""
        if len(steps) < 2:
            return  # one call spans only itself
        start = min(c.received_us for c in steps) * 1000
        end = max(c.received_us * 1000 + c.duration_ns for c in steps)
        totals = self.plugin_time.setdefault(api_id, [0, 0, 0])
        totals[0] += sum(c.duration_ns for c in steps)
        totals[1] += max(end - start, 1)
        totals[2] += 1

    def plugin_share(self, api_id: str) -> dict[str, Any] | None:
        totals = self.plugin_time.get(api_id)
        if not totals:
            return None
        return {"share": round(min(1.0, totals[0] / totals[1]), 4), "journeys": totals[2]}


def streaming_apis(samples: dict[str, list[bytes]]) -> set[str]:
    """The APIs whose Response-hook Objects show a server-sent event stream (Content-Type
    text/event-stream, what the gateway treats as streaming). Decodes: run it off the loop."""
    found = set()
    for api_id, objects in samples.items():
        for data in objects:
            try:
                response = Object.FromString(data).response
            except DecodeError:
                continue
            types = [v for k, v in response.headers.items() if k.lower() == "content-type"]
            types += [v for h in response.multivalue_headers if h.key.lower() == "content-type" for v in h.values]
            if any(t.split(";")[0].strip().lower() == "text/event-stream" for t in types):
                found.add(api_id)
                break
    return found


def _outcome(capture: Capture) -> str:
    if capture.grpc_status not in (None, "OK"):
        return f"gRPC {capture.grpc_status}"
    if capture.error is not None:
        return "failed"
    if capture.analysis is not None and capture.analysis.outcome_status is not None:
        status = capture.analysis.outcome_status
        return str(status)
    return "answered"


def _percentile_ms(ordered: list[int], share: float) -> float | None:
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))  # nearest rank
    return round(ordered[index] / 1e6, 3)


def _reason(code: str, text: str) -> dict[str, str]:
    return {"code": code, "text": text}


def api_reasons(api: ApiDefinition) -> list[dict[str, str]]:
    """Why none of the API's hooks reaches a gRPC plugin server, as its definition shows."""
    reasons = []
    if not api.active:
        reasons.append(_reason("api-inactive", "the API is not active (`active: false`): the gateway does not load it"))
    if api.hooks and not api.driver:
        reasons.append(
            _reason(
                "driver-empty",
                "`custom_middleware.driver` is empty: the gateway answers every "
                "request to this API with 500 and calls no plugin",
            )
        )
    elif api.hooks and api.driver != "grpc":
        reasons.append(
            _reason(
                "driver-not-grpc",
                f'`custom_middleware.driver` is {api.driver!r}, not "grpc": '
                "these hooks go to that runtime, never to a gRPC plugin server",
            )
        )
    if api.bundle and api.bundle_disabled:
        reasons.append(
            _reason(
                "bundle-disabled", f"the bundle {api.bundle!r} is named but `custom_middleware_bundle_disabled` is true"
            )
        )
    elif api.bundle and not api.hooks:
        reasons.append(
            _reason(
                "bundle-not-loaded",
                f"the bundle {api.bundle!r} is named but no hooks are loaded: "
                "it failed to load (before 5.11 the gateway then serves the API without them; "
                "see its log for `bundle`)",
            )
        )
    return reasons


def hook_reasons(
    api: ApiDefinition, hook: ConfiguredHook, calls: HookCalls | None, api_calls: int, api_blocked: bool = False
) -> list[dict[str, str]]:
    """Why this hook is not called (or not answered), each only where the definition or the captures show it."""
    reasons = []
    if hook.disabled:
        reasons.append(_reason("hook-disabled", "the hook is disabled (`disabled: true`)"))
    if hook.hook_type == "CustomKeyCheck":
        if api.use_keyless:
            reasons.append(
                _reason(
                    "auth-on-keyless",
                    "an auth_check on a keyless API (`use_keyless: true`): "
                    "the gateway runs no authentication, so never this hook",
                )
            )
        elif not api.custom_plugin_auth:
            reasons.append(
                _reason(
                    "custom-auth-off",
                    "`custom_plugin_auth_enabled` is false: the gateway uses "
                    "another auth method and never calls this hook",
                )
            )
    if hook.hook_type == "PostKeyAuth" and api.use_keyless:
        reasons.append(
            _reason(
                "post-auth-on-keyless",
                "a post_key_auth hook on a keyless API: it runs only after authentication, which a keyless API skips",
            )
        )
    if calls is not None and calls.unimplemented:
        reasons.append(
            _reason(
                "unimplemented",
                f"the plugin server answered UNIMPLEMENTED to {calls.unimplemented} "
                f"call(s) of {hook.name!r}: it has no handler by that name",
            )
        )
    if not reasons and not api_blocked and api_calls == 0:
        reasons.append(
            _reason(
                "no-traffic",
                "no call of any hook of this API is in the buffer: the API has "
                "received no request since (or its requests went elsewhere)",
            )
        )
    return reasons


def hook_warnings(
    api: ApiDefinition, hook: ConfiguredHook, calls: HookCalls | None, streaming: bool = False
) -> list[dict[str, str]]:
    """Warnings that need the definition."""
    warnings = []
    if hook.hook_type == "Response" and streaming and not hook.disabled:
        warnings.append(
            _reason(
                "response-buffers-stream",
                "a Response hook on an API whose upstream streams (text/event-stream): the gateway reads the whole "
                "response for the hook, so the client gets the events only when the stream ends",
            )
        )
    if hook.require_session and HOOK_ORDER.index(hook.hook_type) <= _AUTH_ORDER:
        warnings.append(
            _reason(
                "session-before-auth",
                "`require_session` on a hook that runs before authentication: there is no session yet to send",
            )
        )
    if not hook.raw_body_only and calls is not None and calls.largest_request >= TWICE_NEAR_LIMIT:
        warnings.append(
            _reason(
                "body-twice",
                f"a call of {calls.largest_request} bytes: without `raw_body_only` "
                "the body travels twice (body and raw_body), near gRPC's 4 MiB default limit",
            )
        )
    return warnings


def report(apis: Iterable[tuple[ApiDefinition, str]], usage: Usage, catalog_read: bool = True) -> dict[str, Any]:
    """GET /api/apis: every API the catalog knows with its hooks in the gateway's order, and the
    calls from APIs it does not know (none while no catalog was ever read: every API would be)."""
    known: set[str] = set()
    rows = []
    by_api: dict[str, list[tuple[str, str, HookCalls]]] = {}
    for (api_id, hook_type, hook_name), seen in usage.hooks.items():
        by_api.setdefault(api_id, []).append((hook_type, hook_name, seen))
    for api, gateway in sorted(apis, key=lambda pair: (pair[0].name.lower(), pair[0].api_id)):
        known.add(api.api_id)
        api_calls = usage.apis.get(api.api_id, 0)
        configured = {(h.hook_type, h.name) for h in api.hooks}
        reasons_of_api = api_reasons(api)
        hooks = []
        for hook in api.hooks:
            calls = usage.hooks.get((api.api_id, hook.hook_type, hook.name))
            reasons = hook_reasons(api, hook, calls, api_calls, bool(reasons_of_api))
            hooks.append(
                {
                    "hook_type": hook.hook_type,
                    "name": hook.name,
                    "disabled": hook.disabled,
                    "require_session": hook.require_session,
                    "raw_body_only": hook.raw_body_only,
                    **(calls or HookCalls()).as_json(),
                    "fires": bool(calls and calls.calls) and not any(r["code"] == "unimplemented" for r in reasons),
                    "reasons": reasons,
                    "warnings": hook_warnings(api, hook, calls, api.api_id in usage.streaming),
                }
            )
        unconfigured = [
            {"hook_type": hook_type, "name": hook_name, **seen.as_json()}
            for hook_type, hook_name, seen in by_api.get(api.api_id, ())
            if (hook_type, hook_name) not in configured
        ]
        rows.append(
            {
                **api.as_json(),
                "gateway": gateway,
                "calls": api_calls,
                "last_seen_us": usage.last_us.get(api.api_id),
                "plugin_share": usage.plugin_share(api.api_id),
                "reasons": reasons_of_api,
                "hooks": hooks,
                "unconfigured_calls": unconfigured,
            }
        )
    unknown = [
        {
            "api_id": api_id,
            "calls": count,
            "last_seen_us": usage.last_us.get(api_id),
            "reason": _reason(
                "unknown-api",
                "calls from an API the catalog does not know: another gateway, or a "
                "definition changed since the catalog was read",
            ),
        }
        for api_id, count in usage.apis.most_common()
        if api_id not in known and catalog_read
    ][:MAX_UNKNOWN_APIS]
    return {"apis": rows, "unknown_apis": unknown}
