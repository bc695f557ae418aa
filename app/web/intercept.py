"""Intercept API: the intercept query, the held calls and what to do with them, and the outcome preview.

Every action is a write, so the access guard's token, Host and same-origin rules apply to it.
A bad edit is a 400 naming the field, and the call stays held; an action on a call that is no
longer held (another viewer acted first, it timed out, the gateway went away) is a 409.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from app.proxy.intercept import (
    POINTS,
    Decision,
    Held,
    InterceptError,
    Interceptor,
    edited,
    fail_code,
    parse_object,
    preset_reply,
)
from app.proxy.mock import mock_reply
from app.proxy.replay import ReplayError, restore_redacted
from app.tyk.lint import lint_reply
from app.tyk.outcome import Gateway, outcome_of
from app.web.context import Context, WebContext
from protogen import coprocess_object_pb2 as pb

router = APIRouter(prefix="/api", tags=["intercept"])


class InterceptQuery(BaseModel):
    q: str = Field("", description="a filter query (docs/filters.md) over what is known before the call is answered")
    points: list[str] = Field(list(POINTS), description='"before" (proxy mode) and/or "after" the plugin')


class Edit(BaseModel):
    object: dict[str, Any] | None = Field(None, description="the held Object, edited (protobuf JSON)")


class Respond(BaseModel):
    preset: str | None = Field(None, description="allow, deny-401, deny-403 or override-503")
    mock: str | None = Field(None, description="the name of a mock rule in --rules, applied to the Object sent")
    object: dict[str, Any] | None = Field(None, description="a reply of your own (protobuf JSON) instead of a preset")


class Fail(BaseModel):
    code: str = Field("UNAVAILABLE", description="a gRPC status name")
    details: str = Field("failed from the inspector's intercept", max_length=10_000)


class Preview(BaseModel):
    sent: dict[str, Any] | None = Field(None, description="the Object the gateway sent (protobuf JSON)")
    held: int | None = Field(None, description="or: the held call whose sent Object to use")
    reply: dict[str, Any] | None = Field(None, description="the candidate reply; null: the call fails")


def _interceptor(context: WebContext) -> Interceptor:
    if context.interceptor is None:
        raise HTTPException(503, "intercept is not available")
    return context.interceptor


def _held(context: WebContext, held_id: int) -> Held:
    held = _interceptor(context).held.get(held_id)
    if held is None:
        raise HTTPException(409, f"call {held_id} is not held (any more): it was let go, timed out or abandoned")
    return held


def _who(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _resolve(context: WebContext, held: Held, decision: Decision) -> dict[str, Any]:
    try:
        _interceptor(context).resolve(held.id, decision)
    except KeyError:
        raise HTTPException(409, f"call {held.id} is not held any more: another action came first") from None
    return {"id": held.id, "how": decision.how}


def _mocks(context: WebContext) -> dict[str, Mapping[str, Any]]:
    """The mock rules of the rules file, by name: what Respond can also answer with."""
    rules = context.replayer.rules if context.replayer is not None else None
    if rules is None:
        return {}
    return {rule.name: rule.mock for rule in rules.rules if rule.mock is not None}


@router.get("/intercept")
async def get_intercept(context: Context) -> dict[str, Any]:
    """The intercept query, its points, its bounds and counts, and the mock rules Respond can use."""
    return {**_interceptor(context).as_dict(), "mocks": list(_mocks(context))}


@router.put("/intercept")
async def put_intercept(context: Context, body: InterceptQuery) -> dict[str, Any]:
    """Set the intercept query ("" turns intercept off); 400 names what is wrong with it."""
    intercept = _interceptor(context)
    try:
        intercept.configure(body.q, body.points)
    except InterceptError as exc:
        raise HTTPException(400, str(exc)) from None
    if intercept.share is not None:
        try:
            await intercept.share(intercept.query, sorted(intercept.points))
        except (RedisError, OSError) as exc:
            raise HTTPException(503, f"set on this replica only: the shared store is not answering ({exc})") from None
    return {**intercept.as_dict(), "mocks": list(_mocks(context))}


@router.get("/held")
async def list_held(context: Context) -> dict[str, Any]:
    """The held calls, oldest first."""
    intercept = _interceptor(context)
    return {"items": [held.as_dict(intercept.shown_path) for held in intercept.held.values()]}


@router.get("/held/{held_id}")
async def held_detail(context: Context, held_id: int) -> dict[str, Any]:
    """A held call with the Object held (to edit) and the Object the gateway sent, in protobuf JSON, as shown."""
    held = _held(context, held_id)
    redactor = context.redactor
    shown = []
    for data in (held.message, held.capture.request):
        message = pb.Object.FromString(data)
        redactor.object(message)
        shown.append(json_format.MessageToDict(message))
    return {**held.as_dict(redactor.url), "object": shown[0], "sent": shown[1]}


def _restored(context: WebContext, held: Held, edit: dict[str, Any]) -> dict[str, Any]:
    # The page edits the redacted view: values it showed hidden and the user left alone are put back.
    try:
        return restore_redacted(edit, held.message, context.redactor)
    except ReplayError as exc:
        raise HTTPException(400, f"object: {exc}") from None


@router.post("/held/continue-all")
async def continue_all(context: Context, request: Request) -> dict[str, int]:
    """Let every held call go on as it is."""
    return {"continued": _interceptor(context).release_all("continued (continue all)", _who(request))}


@router.post("/held/{held_id}/continue")
async def continue_held(context: Context, held_id: int, request: Request, body: Edit | None = None) -> dict[str, Any]:
    """Let the call go on, as it is or as edited (the Object goes on exactly as the edit serializes)."""
    held = _held(context, held_id)
    if body is None or body.object is None:
        return _resolve(context, held, Decision("continue", by=_who(request)))
    try:
        data, diff = edited(held, _restored(context, held, body.object), context.redactor.object)
    except InterceptError as exc:
        raise HTTPException(400, str(exc)) from None
    how = "continued as edited" if data != held.message else "continued"
    return _resolve(context, held, Decision("continue", data, how=how, by=_who(request), edit=diff or None))


@router.post("/held/{held_id}/respond")
async def respond_held(context: Context, held_id: int, body: Respond, request: Request) -> dict[str, Any]:
    """Answer the call with a preset (real return_overrides, or a session for allow) or an Object of your own."""
    held = _held(context, held_id)
    try:
        if body.object is not None:
            data = parse_object(_restored(context, held, body.object)).SerializeToString()
            how = "responded with an edited Object"
        elif body.mock is not None:
            spec = _mocks(context).get(body.mock)
            if spec is None:
                raise InterceptError(
                    f"mock {body.mock!r} is not a mock rule in the rules file ({', '.join(_mocks(context)) or 'none'})"
                )
            data = mock_reply(held.capture.request, spec)
            how = f"responded with the mock {body.mock}"
        elif body.preset is not None:
            data = preset_reply(held, body.preset)
            how = f"responded {body.preset}"
        else:
            raise InterceptError("give a preset (allow, deny-401, deny-403, override-503), a mock or an object")
    except InterceptError as exc:
        raise HTTPException(400, str(exc)) from None
    return _resolve(context, held, Decision("respond", data, how=how, by=_who(request)))


@router.post("/held/{held_id}/fail")
async def fail_held(context: Context, held_id: int, body: Fail, request: Request) -> dict[str, Any]:
    """Fail the call with a gRPC error (the outcome says what the gateway does with it)."""
    held = _held(context, held_id)
    try:
        code = fail_code(body.code)
    except InterceptError as exc:
        raise HTTPException(400, str(exc)) from None
    decision = Decision("fail", code=code, details=body.details, how=f"failed {code.name}", by=_who(request))
    return _resolve(context, held, decision)


@router.post("/outcome/preview")
async def outcome_preview(context: Context, body: Preview) -> dict[str, Any]:
    """The outcome and lint of a candidate reply to a sent Object, by the model the detail view uses."""
    candidate = body.reply
    if body.held is not None:
        held = _held(context, body.held)
        try:
            sent = pb.Object.FromString(held.capture.request)
        except DecodeError:
            raise HTTPException(400, "held: the call's Object cannot be read") from None
        if candidate is not None:
            candidate = _restored(context, held, candidate)  # the page edits the redacted view
    elif body.sent is not None:
        sent = _parsed(body.sent, "sent")
    else:
        raise HTTPException(400, "give sent (an Object) or held (a held call's id)")
    reply = None if candidate is None else _parsed(candidate, "reply").SerializeToString()
    sent_bytes = sent.SerializeToString()
    size = len(sent_bytes) + len(reply or b"")
    # Judged off the loop: in a worker process when large, as the detail is.
    return await context.offloader.run(size, _judge, sent_bytes, reply, context.gateway)


def _parsed(data: dict[str, Any], where: str) -> pb.Object:
    try:
        return parse_object(data, where)
    except InterceptError as exc:
        raise HTTPException(400, str(exc)) from None


def _judge(sent_bytes: bytes, reply_bytes: bytes | None, gateway: Gateway) -> dict[str, Any]:
    sent = pb.Object.FromString(sent_bytes)
    reply = None if reply_bytes is None else pb.Object.FromString(reply_bytes)
    size = 0 if reply_bytes is None else len(reply_bytes)
    outcome = outcome_of(sent, reply, gateway, sent_size=len(sent_bytes), reply_size=size)
    warnings = [] if reply is None else lint_reply(sent, reply, gateway, reply_size=size, outcome=outcome)
    return {"outcome": outcome.as_dict(), "warnings": [dict(w) for w in warnings]}
