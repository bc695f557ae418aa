"""Lint rules for CustomKeyCheck replies: refusals, and sessions the key checks after auth refuse.

From ProcessRequest in `gateway/coprocess.go`, `gateway/mw_key_expired_check.go`,
`gateway/mw_access_rights.go`, `gateway/mw_granular_access.go`, `user/session.go` (docs/lint.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from app.tyk.lint.common import Warning_, warning
from app.tyk.outcome import MILLISECONDS_THRESHOLD, Gateway, Outcome, merged_metadata
from protogen import coprocess_common_pb2 as common
from protogen import coprocess_object_pb2 as pb

# A session_lifetime this large is a unix time, not a TTL (about 31 years of seconds).
TIMESTAMP_SECONDS = 1_000_000_000


def auth_rules(sent: pb.Object, reply: pb.Object, gateway: Gateway, outcome: Outcome) -> Iterator[Warning_]:
    if sent.hook_type != common.CustomKeyCheck or reply.request.return_overrides.response_code > 0:
        return
    if not reply.request.HasField("return_overrides"):
        return
    if not reply.HasField("session"):
        yield warning(
            "auth-no-session",
            "CustomKeyCheck reply without a session: the client gets 403 Forbidden and "
            "an AuthFailure event fires; return a session and metadata.token, or deny with "
            "return_overrides.response_code 401/403",
        )
        return
    metadata = merged_metadata(reply)
    if not metadata.get("token"):
        yield from _token_problem(reply, metadata)
        return
    yield from _session_checks(sent, reply.session, gateway)


def granted_token(sent: pb.Object, reply: pb.Object) -> str | None:
    """The token a CustomKeyCheck reply lets the request in with (without an id_extractor, the
    session's Redis key); None when the reply does not let it in."""
    if sent.hook_type != common.CustomKeyCheck or not reply.request.HasField("return_overrides"):
        return None
    if reply.request.return_overrides.response_code > 0 or not reply.HasField("session"):
        return None
    return merged_metadata(reply).get("token") or None


def shared_token(credentials: int) -> Warning_:
    """The cross-capture rule: one token returned for several credentials (app.journeys.tokens finds them)."""
    return warning(
        "auth-shared-token",
        f"this token was also returned for other credentials ({credentials} different ones among the "
        "buffered captures): without an id_extractor the token is the session's Redis key, so every "
        "caller with this token shares one session, rate limit and quota in Redis; return a token "
        "derived from the credential (e.g. a hash of the API key, or the user's id), or configure an id_extractor",
    )


def _token_problem(reply: pb.Object, metadata: dict[str, str]) -> Iterator[Warning_]:
    near = [k for k in metadata if k.lower() == "token" and k != "token"]
    if near:
        yield warning(
            "auth-token-key",
            f"the token is under metadata[{near[0]!r}]: the gateway reads exactly "
            "'token', so the client gets 403 Forbidden; rename the key to token",
        )
    elif "token" in reply.metadata and reply.session.metadata.get("token"):
        yield warning(
            "auth-empty-token",
            "the top-level metadata has an empty token, and it overrides the session's: "
            "the client gets 403 Forbidden; set metadata.token or leave it out",
        )
    else:
        yield warning(
            "auth-no-token",
            "CustomKeyCheck reply without metadata.token: the client gets 403 Forbidden "
            "and an AuthFailure event fires; set metadata.token (the key the session is stored under)",
        )


def _session_checks(sent: pb.Object, session: Any, gateway: Gateway) -> Iterator[Warning_]:
    policies = bool(session.apply_policies or session.apply_policy_id)
    if not policies and gateway.now is not None and 0 < session.expires < gateway.now:
        yield warning(
            "auth-expired",
            f"session.expires {session.expires} is in the past: the key is accepted, then "
            "the client gets 401 Key has expired, please renew; set expires in the future or 0 (never)",
        )
    api_id = sent.spec.get("APIID", "")
    if not policies and session.access_rights and api_id and api_id not in session.access_rights:
        yield warning(
            "auth-access-rights",
            f"session.access_rights has no entry for this API ({api_id}): the client "
            "gets 403 Access to this API has been disallowed; add the API or leave access_rights empty",
        )
    lower = sorted(
        {m for a in session.access_rights.values() for u in a.allowed_urls for m in u.methods if m != m.upper()}
    )
    if lower:
        yield warning(
            "auth-lowercase-methods",
            f"allowed_urls methods {', '.join(lower)} are not upper-case: Tyk "
            "compares them with the request's method as is, so those requests get 403; use GET, POST, ...",
        )
    deadline = session.id_extractor_deadline
    if deadline > MILLISECONDS_THRESHOLD:
        yield warning(
            "auth-deadline-ms",
            f"id_extractor_deadline {deadline} looks like milliseconds: the gateway reads "
            "unix seconds, so with an id_extractor the session is cached for centuries; divide by 1000",
        )
    if session.session_lifetime >= TIMESTAMP_SECONDS:
        yield warning(
            "auth-lifetime-timestamp",
            f"session_lifetime {session.session_lifetime} looks like a unix "
            "time: it is a TTL in seconds, so the key lives for decades; give the number of seconds",
        )
    if gateway.now is not None and _is_now(session.last_updated, gateway.now):
        yield warning(
            "auth-last-updated",
            "last_updated is the time of this call: it is part of the rate limiter's "
            "bucket key, so a value that changes every call resets the rate limit each time; set it only "
            "when the key's limits change",
        )


def _is_now(last_updated: str, now: float) -> bool:
    try:
        value = float(last_updated)
    except ValueError:
        return False
    if value > MILLISECONDS_THRESHOLD:
        value /= 1000
    return abs(value - now) < 60
