"""Reply lint: the mistakes in a plugin's reply that Tyk Gateway silently punishes.

Each rule cites what the gateway does with the reply (see docs/proxy.md). Pure: it judges
the messages it is given; app.capture.analysis runs it on captures, off the Dispatch path.
"""

from __future__ import annotations

from protogen import coprocess_common_pb2 as common
from protogen import coprocess_object_pb2 as pb

GATEWAY_DEFAULT_LIMIT = 4 * 1024 * 1024
NEAR_LIMIT = int(GATEWAY_DEFAULT_LIMIT * 0.9)
REQUEST_HOOKS = (common.Pre, common.PostKeyAuth, common.Post, common.CustomKeyCheck)


def _warning(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


def lint_reply(sent: pb.Object, reply: pb.Object, reply_size: int = 0, sent_size: int = 0) -> list[dict[str, str]]:
    """Warnings for a Dispatch reply, given the Object the gateway sent."""
    found: list[dict[str, str]] = []
    if not reply.HasField("request"):
        return [
            _warning("request-missing", "the reply has no request: the gateway dereferences it and crashes the request")
        ]
    if not reply.request.HasField("return_overrides"):
        found.append(_warning(
            "return-overrides-missing",
            "request.return_overrides is missing: the gateway dereferences it and crashes the request",
        ))  # fmt: skip
    before, after = sent.request, reply.request
    hook = reply.hook_type
    if hook in REQUEST_HOOKS:
        if after.body != before.body and after.raw_body == before.raw_body:
            found.append(_warning("body-ignored", "request.body changed but raw_body did not: the gateway ignores "
                                  "body (since 2.8) and sends raw_body upstream"))  # fmt: skip
        if before.raw_body and not after.raw_body:
            found.append(
                _warning("body-emptied", "raw_body is empty in the reply: the upstream request body will be empty")
            )
        if dict(after.headers) != dict(before.headers):
            found.append(_warning("headers-edited", "request.headers was edited: the gateway ignores it; use "
                                  "set_headers and delete_headers"))  # fmt: skip
        if dict(after.params) != dict(before.params):
            found.append(_warning("params-edited", "request.params was edited: the gateway ignores it; use add_params "
                                  "and delete_params"))  # fmt: skip
        if after.extended_params:
            found.append(_warning("extended-params", "extended_params are ignored by the gateway; use add_params"))
        if not after.url.startswith(("/", "http://", "https://")):
            found.append(_warning("url-invalid", f"request.url {after.url!r} is not an absolute path or URL: "
                                  "the gateway answers 500 Middleware error"))  # fmt: skip
    overrides = after.return_overrides
    if overrides.response_code >= 400 and not overrides.override_error:
        found.append(_warning("error-template", f"response_code {overrides.response_code} without override_error: "
                              "Tyk renders the body through its error template ({\"error\": ...}) and fires "
                              "AuthFailure"))  # fmt: skip
    if hook == common.CustomKeyCheck and overrides.response_code <= 0:
        token = reply.session.metadata.get("token") or reply.metadata.get("token")
        if not reply.HasField("session"):
            found.append(_warning("auth-no-session", "CustomKeyCheck reply without a session: the gateway answers 403"))
        elif not token:
            found.append(
                _warning("auth-no-token", "CustomKeyCheck reply without metadata.token: the gateway answers 403")
            )
    if hook == common.Response:
        found += _lint_response(sent, reply)
    if max(reply_size, sent_size) >= NEAR_LIMIT:
        found.append(_warning("near-size-limit", f"{max(reply_size, sent_size)} bytes: near gRPC's 4 MiB default; "
                              "raise grpc_recv_max_size / grpc_send_max_size on the gateway"))  # fmt: skip
    return found


def _lint_response(sent: pb.Object, reply: pb.Object) -> list[dict[str, str]]:
    if not reply.HasField("response"):
        return [_warning("response-missing", "Response hook reply without response: the client gets 500")]
    found = []
    response, before = reply.response, sent.response
    if response.status_code == 0:
        found.append(_warning("status-zero", "response.status_code is 0: the gateway writes status 0"))
    if response.body != before.body and response.raw_body == before.raw_body:
        found.append(_warning("response-body-ignored", "response.body changed but raw_body did not: the gateway "
                              "sends raw_body"))  # fmt: skip
    multi = {h.key: list(h.values) for h in response.multivalue_headers}
    out_of_step = set(multi) != set(response.headers) or any(
        multi[k][:1] != [v] for k, v in response.headers.items() if k in multi
    )
    if out_of_step:
        found.append(_warning("headers-out-of-step", "response.headers and multivalue_headers disagree: the gateway "
                              "rebuilds all headers from them (an unchanged headers map with emptied multivalue "
                              "headers strips every header)"))  # fmt: skip
    return found
