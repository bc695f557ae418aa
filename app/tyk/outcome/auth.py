"""CustomKeyCheck: whether the key is accepted, under which session key, with what metadata and caching.

Follows ProcessRequest (plugin auth) in `gateway/coprocess.go`, the id extractor in
`gateway/coprocess_id_extractor.go` and the key checks that run after the hook.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from app.tyk.golang import status_line
from app.tyk.outcome.model import (
    MILLISECONDS_THRESHOLD,
    Auth,
    Gateway,
    Outcome,
    UpstreamRequest,
    continue_summary,
    error_response,
)
from protogen import coprocess_object_pb2 as pb


def merged_metadata(reply: pb.Object) -> dict[str, str]:
    """session.metadata with the top-level metadata copied over it (the top level wins)."""
    merged = dict(reply.session.metadata)
    merged.update(reply.metadata)
    return merged


def auth_outcome(sent: pb.Object, reply: pb.Object, gateway: Gateway, name: str, upstream: UpstreamRequest) -> Outcome:
    version = str(gateway.version)
    metadata = merged_metadata(reply) if reply.HasField("session") else dict(reply.metadata)
    token = metadata.get("token", "")
    if not reply.HasField("session") or not token:
        if not reply.HasField("session"):
            reason = "the reply has no session"
        elif reply.metadata.get("token") == "" and "token" in reply.metadata and reply.session.metadata.get("token"):
            reason = "the top-level metadata token is empty and overrides the session's"
        elif any(k.lower() == "token" and k != "token" for k in metadata):
            reason = "the token is under a key other than exactly 'token'"
        else:
            reason = "the reply has no metadata token"
        response = error_response(sent, 403, "Forbidden", "auth refused", gateway, events=("AuthFailure",))
        auth = Auth(False, reason, token, None, metadata, "none: the request is refused")
        return Outcome(
            name,
            "respond",
            f"{reason}: the client gets 403 Forbidden and an AuthFailure event fires",
            client_response=response,
            auth=auth,
            tyk_version=version,
        )
    session = reply.session
    caching, until = _caching(session.id_extractor_deadline, gateway)
    if gateway.id_extractor is True:
        key = None
        key_note = "the session is stored under the id-extractor key (from the API's OrgID and the credential's MD5)"
    else:
        key = token
        key_note = f"the session is stored under the token {token!r}" + (
            "" if gateway.id_extractor is False else " (with an id_extractor, under the extractor's key instead)"
        )
    notes = [key_note, "the gateway overwrites the session's org_id with the API's OrgID"]
    auth = Auth(True, "session and token present", token, key, metadata, caching, until)
    refusal = _later_refusal(sent, session, gateway)
    if refusal is not None:
        status, message, events = refusal
        response = error_response(sent, status, message, "key check", gateway, events=events)
        auth = Auth(True, f"allowed by the plugin, then refused: {message}", token, key, metadata, caching, until)
        notes.append("PostKeyAuth hooks run before this check (and may answer first)")
        return Outcome(
            name,
            "respond",
            f"the plugin allows it, then Tyk answers {status_line(status)} ({message})",
            client_response=response,
            auth=auth,
            notes=tuple(notes),
            tyk_version=version,
        )
    return Outcome(
        name,
        "continue",
        "the key is accepted; " + continue_summary(upstream),
        upstream_request=upstream,
        auth=auth,
        notes=tuple(notes),
        tyk_version=version,
    )


def _caching(deadline: int, gateway: Gateway) -> tuple[str, int | None]:
    if deadline <= 0:
        return "none: the plugin is called on every request", None
    if deadline > MILLISECONDS_THRESHOLD:
        return (
            f"id_extractor_deadline {deadline} is in milliseconds: with an id_extractor the session is cached "
            "for centuries (it is read as unix seconds)"
        ), deadline
    when = dt.datetime.fromtimestamp(deadline, dt.UTC).isoformat().replace("+00:00", "Z")
    if gateway.now is not None and deadline <= gateway.now:
        return f"none: id_extractor_deadline {when} has already passed", deadline
    ahead = f" ({deadline - gateway.now:.0f} s after the call)" if gateway.now is not None else ""
    if gateway.id_extractor is False:
        return f"none: id_extractor_deadline {when} only counts with an id_extractor", deadline
    return (
        f"until {when}{ahead} with an id_extractor: requests with the same credential skip the plugin until "
        "then (no caching without an id_extractor)"
    ), deadline


def _later_refusal(sent: pb.Object, session: Any, gateway: Gateway) -> tuple[int, str, tuple[str, ...]] | None:
    """The key-expiry and access-rights middleware that run after the auth hook."""
    if session.apply_policies or session.apply_policy_id:
        return None  # policies can change both; the model does not know them
    if session.is_inactive:
        return 403, "Key is inactive, please renew", ()
    if gateway.now is not None and 0 < session.expires < gateway.now:
        return 401, "Key has expired, please renew", ("KeyExpired",)
    api_id = sent.spec.get("APIID", "")
    if session.access_rights and api_id and api_id not in session.access_rights:
        return 403, "Access to this API has been disallowed", ()
    return None
