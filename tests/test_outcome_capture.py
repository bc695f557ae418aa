"""The outcome as the list and the detail show it for a capture: on the real bytes, shown redacted."""

from __future__ import annotations

import json

from app.capture.record import Capture
from app.formats.analysis import outcome_status_of
from app.formats.views import capture_detail, summary_of
from app.redaction.redact import Redactor
from protogen import coprocess_common_pb2 as common
from protogen import coprocess_object_pb2 as pb
from tests.conftest import load_object


def _capture(sent: pb.Object, reply: pb.Object | None = None) -> Capture:
    data = sent.SerializeToString()
    return Capture(
        kind="dispatch",
        request=data,
        reply=data if reply is None else reply.SerializeToString(),
        hook_type=common.HookType.Name(sent.hook_type),
        hook_name=sent.hook_name,
        method=sent.request.method,
        path=sent.request.url,
    )


def test_an_echoed_object_carrying_an_override_answers_the_client_in_the_list_too() -> None:
    """An Object sent by hand with overrides, echoed: the list said "continue" while the detail said 401."""
    sent = load_object("pre.json")
    sent.request.return_overrides.response_code = 401
    sent.request.return_overrides.response_error = "no"
    capture = _capture(sent)
    capture.reply = capture.request  # an echo is the very same bytes
    detail = capture_detail(capture)
    assert detail["outcome"]["status"] == 401
    assert outcome_status_of(capture) == 401
    assert summary_of(capture, Redactor())["outcome_status"] == 401


def test_a_plain_echo_still_goes_on() -> None:
    capture = _capture(load_object("pre.json"))
    capture.reply = capture.request
    assert outcome_status_of(capture) == "continue"


def test_sizes_and_content_length_come_from_the_real_body_and_only_the_view_is_redacted() -> None:
    sent = load_object("post-json-body.json")
    reply = pb.Object()
    reply.CopyFrom(sent)
    body = json.dumps({"user": "ann", "password": "correct horse battery staple"}).encode()
    reply.request.raw_body = body
    reply.request.set_headers["Authorization"] = "Bearer s3cr3t-t0ken"
    reply.request.add_params["api_key"] = "k-123456"
    detail = capture_detail(_capture(sent, reply), Redactor())
    upstream = detail["outcome"]["upstream_request"]
    headers = dict(upstream["headers"])
    assert upstream["body_size"] == len(body)
    assert headers["Content-Length"] == str(len(body))
    assert headers["Authorization"] != "Bearer s3cr3t-t0ken" and "s3cr3t" not in json.dumps(detail["outcome"])
    assert "k-123456" not in upstream["url"] and "k-123456" not in upstream["query"]
    assert "correct horse" not in json.dumps(detail)


def test_an_error_template_is_measured_on_the_real_message_and_shown_redacted() -> None:
    sent = load_object("pre.json")
    reply = pb.Object()
    reply.CopyFrom(sent)
    overrides = reply.request.return_overrides
    overrides.response_code = 403
    overrides.response_error = json.dumps({"password": "a long secret value here"})
    overrides.headers["Content-Type"] = "application/json"
    outcome = capture_detail(_capture(sent, reply), Redactor())["outcome"]
    response = outcome["client_response"]
    real_length = len('{\n    "error": "' + overrides.response_error.replace('"', '\\"') + '"\n}')
    assert dict(response["headers"])["Content-Length"] == str(real_length) == str(response["body_size"])
    assert "a long secret" not in json.dumps(outcome)
