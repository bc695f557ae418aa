"""Named cases: a request through the real gateway, a plugin reply, and the inspector's outcome checked against
what the client and the upstream actually got (docs/conformance.md lists them with their results)."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from typing import Any

import pytest

from protogen import coprocess_object_pb2 as pb
from tests.conformance.environment import Case, Environment
from tests.conformance.harness import Answer, Behaviour

Edit = Callable[[pb.Object], Any]


def edit(*changes: Edit) -> Behaviour:
    """A plugin that applies `changes` to the Object and returns it."""

    def behaviour(obj: pb.Object) -> pb.Object:
        for change in changes:
            change(obj)
        return obj

    return behaviour


def set_header(name: str, value: str) -> Edit:
    return lambda o: o.request.set_headers.__setitem__(name, value)


def delete_header(name: str) -> Edit:
    return lambda o: o.request.delete_headers.append(name)


def add_param(name: str, value: str) -> Edit:
    return lambda o: o.request.add_params.__setitem__(name, value)


def delete_param(name: str) -> Edit:
    return lambda o: o.request.delete_params.append(name)


def url(value: str) -> Edit:
    return lambda o: setattr(o.request, "url", value)


def method(value: str) -> Edit:
    return lambda o: setattr(o.request, "method", value)


def raw_body(value: bytes) -> Edit:
    return lambda o: setattr(o.request, "raw_body", value)


def override(code: int, *, error: str = "", body: str = "", headers: dict[str, str] | None = None,
             override_error: bool = False) -> Edit:  # fmt: skip
    def change(o: pb.Object) -> None:
        overrides = o.request.return_overrides
        overrides.response_code = code
        overrides.response_error = error
        overrides.response_body = body
        overrides.override_error = override_error
        overrides.headers.update(headers or {})

    return change


def fail(obj: pb.Object) -> pb.Object:
    raise RuntimeError("the plugin failed")


def no_request(obj: pb.Object) -> None:
    obj.ClearField("request")


def no_overrides(obj: pb.Object) -> None:
    obj.request.ClearField("return_overrides")


def response_header(name: str, value: str, *, both: bool = False) -> Edit:
    def change(o: pb.Object) -> None:
        o.response.headers[name] = value
        if both:
            o.response.multivalue_headers.add(key=name, values=[value])

    return change


def drop_response_header(name: str, *, headers: bool = True, multivalue: bool = True) -> Edit:
    def change(o: pb.Object) -> None:
        if headers:
            o.response.headers.pop(name, None)
        if multivalue:
            kept = [h for h in o.response.multivalue_headers if h.key != name]
            del o.response.multivalue_headers[:]
            o.response.multivalue_headers.extend(kept)

    return change


def response_body(value: bytes) -> Edit:
    return lambda o: setattr(o.response, "raw_body", value)


def response_status(code: int) -> Edit:
    return lambda o: setattr(o.response, "status_code", code)


def allow(token: str = "key-1", **session: Any) -> Edit:
    def change(o: pb.Object) -> None:
        o.session.rate, o.session.per = 1000, 1
        o.session.quota_max = -1
        for key, value in session.items():
            setattr(o.session, key, value)
        o.session.metadata["token"] = token
        o.metadata["token"] = token

    return change


JSON = {"Content-Type": "application/json"}
MESSAGES = {
    "double_quote": 'say "no"',
    "apostrophe": "it's not yours",
    "angle_brackets": "<b>no</b>",
    "ampersand": "this & that",
    "equals": "a=b",
    "plus": "one+one",
    "backslash": "C:\\path",
    "newline": "first\nsecond",
    "tab": "a\tb",
    "non_ascii": "café 日本 ✓",
    "non_printable": "no\u00a0break\u200bspace",
}
MULTI = Answer(
    200,
    [("Content-Type", "application/json"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("Set-Cookie", "c=3"),
     ("X-Upstream", "yes"), ("Vary", "Accept")],
    b'{"upstream": true}',
)  # fmt: skip
GZIPPED = gzip.compress(b'{"compressed": true}', mtime=0)

CASES = [
    Case("echo_everything"),
    Case("echo_post_with_json_body", method="POST", headers=JSON, body=b'{"a": 1}'),
    Case("pre_set_header", hooks={"pre": edit(set_header("X-Plugin", "pre"))}),
    Case("post_set_header_lowercase_name", hooks={"post": edit(set_header("x-lower", "post"))}),
    Case("pre_delete_header", headers={"X-Remove": "me"}, hooks={"pre": edit(delete_header("X-Remove"))}),
    Case(
        "pre_delete_then_set_same_header",
        headers={"X-Both": "old"},
        hooks={"pre": edit(delete_header("X-Both"), set_header("X-Both", "new"))},
    ),
    Case("pre_set_host_has_no_effect", hooks={"pre": edit(set_header("Host", "elsewhere.example"))}),
    Case("pre_add_param", hooks={"pre": edit(add_param("added", "a b&c"))}),
    Case("pre_delete_param", path="/anything?x=1&y=2", hooks={"pre": edit(delete_param("x"))}),
    Case("pre_add_param_replaces", path="/anything?x=1&x=2", hooks={"pre": edit(add_param("x", "3"))}),
    Case(
        "post_add_and_delete_params",
        path="/anything?keep=1&drop=2",
        hooks={"post": edit(add_param("new", "n"), delete_param("drop"))},
    ),
    Case("pre_url_path_rewrite_keeps_query", hooks={"pre": edit(url("/keyless/elsewhere"))}),
    Case("pre_url_query_is_ignored", hooks={"pre": edit(url("/keyless/elsewhere?y=2"))}),
    Case("post_url_path_rewrite", hooks={"post": edit(url("/keyless/post-path"))}),
    Case("pre_url_invalid_is_500", hooks={"pre": edit(url("not a url"))}),
    Case("pre_url_empty_is_500", hooks={"pre": edit(url(""))}),
    Case("pre_method_change", hooks={"pre": edit(method("POST"))}),
    Case("post_method_change_with_body", method="POST", headers=JSON, body=b"{}", hooks={"post": edit(method("PUT"))}),
    Case(
        "pre_raw_body_replaced",
        method="POST",
        headers=JSON,
        body=b'{"a": 1}',
        hooks={"pre": edit(raw_body(b'{"b": 22}'))},
    ),
    Case(
        "pre_body_string_only_is_ignored",
        method="POST",
        headers=JSON,
        body=b'{"a": 1}',
        hooks={"pre": edit(lambda o: setattr(o.request, "body", '{"ignored": true}'))},
    ),
    Case("pre_raw_body_emptied", method="POST", headers=JSON, body=b'{"a": 1}', hooks={"pre": edit(raw_body(b""))}),
    Case(
        "post_binary_body_echoed",
        method="POST",
        headers={"Content-Type": "application/octet-stream"},
        body=bytes(range(256)),
    ),
    Case(
        "pre_gzip_request_body_echoed",
        method="POST",
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        body=GZIPPED,
    ),
    Case("override_401_error_template", hooks={"pre": edit(override(401, error="bad key"))}),
    Case("override_403_default_message", hooks={"pre": edit(override(403))}),
    Case(
        "override_400_with_headers",
        hooks={"pre": edit(override(400, error="nope", headers={"WWW-Authenticate": "Bearer", "X-Why": "test"}))},
    ),
    Case(
        "override_401_content_type_replaced",
        hooks={"pre": edit(override(401, error="no", headers={"Content-Type": "text/plain"}))},
    ),
    Case("override_error_and_body_error_wins", hooks={"pre": edit(override(403, error="error", body="body"))}),
    Case(
        "override_418_override_error_raw",
        hooks={"pre": edit(override(418, body='{"teapot": true}', override_error=True, headers=JSON))},
    ),
    Case(
        "override_500_override_error_no_content_type",
        hooks={"pre": edit(override(500, body="plain failure", override_error=True))},
    ),
    Case("override_200_json_sniffed", hooks={"pre": edit(override(200, body='{"mocked": true}'))}),
    Case("override_200_with_content_type", hooks={"post": edit(override(200, body='{"mocked": 1}', headers=JSON))}),
    Case("override_200_html_sniffed", hooks={"pre": edit(override(200, body="<html><body>hi</body></html>"))}),
    Case("override_200_empty_body", hooks={"pre": edit(override(200))}),
    Case("override_302_redirect", hooks={"pre": edit(override(302, headers={"Location": "https://example.com/"}))}),
    Case("override_204_no_content", hooks={"pre": edit(override(204))}),
    Case("override_201_from_post", hooks={"post": edit(override(201, body="created", headers={"X-Id": "7"}))}),
    Case("override_code_0_with_body_goes_on", hooks={"pre": edit(override(0, body="never sent"))}),
    Case("override_code_minus_1_with_headers_goes_on", hooks={"pre": edit(override(-1, headers={"X-Never": "sent"}))}),
    Case("override_99_drops_the_connection", hooks={"pre": edit(override(99, body="x", override_error=True))}),
    Case("override_1000_drops_the_connection", hooks={"pre": edit(override(1000, body="x"))}),
    *[Case(f"error_message_{name}", hooks={"pre": edit(override(403, error=text))}) for name, text in MESSAGES.items()],
    Case(
        "error_template_xml",
        headers={"Content-Type": "application/xml"},
        method="POST",
        body=b"<a/>",
        hooks={"pre": edit(override(401, error="a <b> & 'c'"))},
    ),
    Case(
        "error_template_text_xml_with_charset",
        headers={"Content-Type": "text/xml; charset=utf-8"},
        method="POST",
        body=b"<a/>",
        hooks={"pre": edit(override(403, error="no"))},
    ),
    Case(
        "error_template_soap_xml",
        headers={"Content-Type": "application/soap+xml"},
        method="POST",
        body=b"<a/>",
        hooks={"pre": edit(override(403, error="soap"))},
    ),
    Case("pre_plugin_error_is_500", hooks={"pre": fail}),
    Case("post_plugin_error_is_500", hooks={"post": fail}),
    Case("pre_reply_without_request_drops", hooks={"pre": edit(no_request)}),
    Case("pre_reply_without_return_overrides_drops", hooks={"pre": edit(no_overrides)}),
    Case("pre_session_edit_is_ignored", hooks={"pre": edit(lambda o: o.metadata.__setitem__("x", "y"))}),
    # Response hooks
    Case("response_header_in_headers_only", hooks={"response": edit(response_header("X-Added", "1"))}),
    Case("response_header_in_both_maps", hooks={"response": edit(response_header("X-Added", "1", both=True))}),
    Case(
        "response_header_removed_from_both", answer=MULTI, hooks={"response": edit(drop_response_header("X-Upstream"))}
    ),
    Case(
        "response_header_removed_from_headers_only",
        answer=MULTI,
        hooks={"response": edit(drop_response_header("X-Upstream", multivalue=False))},
    ),
    Case(
        "response_header_removed_from_multivalue_only_headers_unchanged",
        answer=MULTI,
        hooks={"response": edit(drop_response_header("X-Upstream", headers=False))},
    ),
    Case(
        "response_header_removed_from_multivalue_only_headers_changed_comes_back",
        answer=MULTI,
        hooks={"response": edit(drop_response_header("Vary", headers=False), response_header("X-New", "1"))},
    ),
    Case(
        "response_multivalue_emptied_strips_headers",
        answer=MULTI,
        hooks={"response": edit(lambda o: o.response.ClearField("multivalue_headers"))},
    ),
    Case("response_several_set_cookie_echoed", answer=MULTI),
    Case(
        "response_set_cookie_first_value_replaced",
        answer=MULTI,
        hooks={"response": edit(response_header("Set-Cookie", "z=9"))},
    ),
    Case("response_body_rewrite_sets_content_length", hooks={"response": edit(response_body(b"newbody"))}),
    Case("response_status_change", hooks={"response": edit(response_status(201))}),
    Case("response_status_0_drops", hooks={"response": edit(response_status(0))}),
    Case("response_without_response_is_500", hooks={"response": edit(lambda o: o.ClearField("response"))}),
    Case("response_plugin_error_is_500", hooks={"response": fail}),
    Case(
        "response_gzip_body_echoed",
        answer=Answer(200, [("Content-Type", "application/json"), ("Content-Encoding", "gzip")], GZIPPED),
    ),
    Case(
        "response_gzip_body_rewritten_encoding_kept",
        answer=Answer(200, [("Content-Type", "application/json"), ("Content-Encoding", "gzip")], GZIPPED),
        hooks={"response": edit(response_body(b'{"plain": true}'))},
    ),
    Case(
        "response_rate_limit_headers_overwrite_the_plugins",
        hooks={"response": edit(response_header("X-RateLimit-Limit", "99"))},
    ),
    Case("response_hop_by_hop_header_removed", hooks={"response": edit(response_header("Keep-Alive", "timeout=5"))}),
    Case("response_upstream_404", answer=Answer(404, [("Content-Type", "text/plain")], b"not here")),
    Case("response_overrides_are_ignored", hooks={"response": edit(override(403, error="ignored"))}),
    # Custom auth (gRPC auth_check)
    Case("auth_allowed", api="auth", headers={"Authorization": "key-1"}, hooks={"auth": edit(allow())}),
    Case(
        "auth_denied_with_error_template",
        api="auth",
        headers={"Authorization": "bad"},
        hooks={"auth": edit(override(401, error="bad key"))},
    ),
    Case("auth_reply_without_session_is_403", api="auth", headers={"Authorization": "x"}),
    Case(
        "auth_token_under_Token_is_403",
        api="auth",
        headers={"Authorization": "x"},
        hooks={
            "auth": edit(
                allow(),
                lambda o: o.metadata.pop("token"),
                lambda o: o.session.metadata.pop("token"),
                lambda o: o.metadata.update({"Token": "x"}),
            )
        },
    ),
    Case(
        "auth_empty_top_level_token_is_403",
        api="auth",
        headers={"Authorization": "x"},
        hooks={"auth": edit(allow(), lambda o: o.metadata.__setitem__("token", ""))},
    ),
    Case(
        "auth_expired_session_is_401",
        api="auth",
        headers={"Authorization": "x"},
        hooks={"auth": edit(allow(token="expired-1", expires=1_000_000_000))},
    ),
    Case(
        "auth_access_rights_without_the_api_is_403",
        api="auth",
        headers={"Authorization": "x"},
        hooks={
            "auth": edit(
                allow(token="other-api-1"), lambda o: setattr(o.session.access_rights["other"], "api_id", "other")
            )
        },
    ),
    Case(
        "auth_metadata_merge_top_level_wins",
        api="auth",
        headers={"Authorization": "x"},
        hooks={"auth": edit(allow(token="session-token"), lambda o: o.metadata.__setitem__("token", "merged-1"))},
    ),
    Case("auth_plugin_error_is_403", api="auth", headers={"Authorization": "x"}, hooks={"auth": fail}),
    Case(
        "postauth_session_edit_is_ignored",
        api="auth",
        headers={"Authorization": "key-1"},
        hooks={"auth": edit(allow()), "postauth": edit(lambda o: setattr(o.session, "rate", 1))},
    ),
    Case(
        "postauth_override_401",
        api="auth",
        headers={"Authorization": "key-1"},
        hooks={"auth": edit(allow()), "postauth": edit(override(401, error="post auth says no"))},
    ),
    # URL rewrite before the Post hook
    Case(
        "post_after_relative_rewrite_loses_params",
        api="rewrite",
        path="/rewrite/x?a=1",
        hooks={"post": edit(add_param("added", "1"))},
    ),
    Case("post_after_relative_rewrite_echo", api="rewrite", path="/rewrite/x?a=1"),
    # Tyk OAS: the same hooks from prePlugins, postPlugins, responsePlugins
    Case("oas_echo_everything", api="oas"),
    Case("oas_pre_set_header_and_param", api="oas", hooks={"pre": edit(set_header("X-Oas", "1"), add_param("o", "1"))}),
    Case("oas_post_override_403", api="oas", hooks={"post": edit(override(403, error="it's OAS"))}),
    Case("oas_response_body_rewrite", api="oas", hooks={"response": edit(response_body(b"oas body"))}),
    Case("hook_without_response_hook_proxies", api="noresp", hooks={"pre": edit(set_header("X-Only", "pre"))}),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(env: Environment, case: Case) -> None:
    result = env.run(case)
    assert not result.mismatches, f"{case.name} on Tyk {env.version}:\n" + "\n".join(result.mismatches)


def test_the_lint_says_an_override_with_code_0_blocks_nothing(env: Environment) -> None:
    result = env.run(Case("lint_override_code_0", hooks={"pre": edit(override(0, body="never sent"))}))
    assert not result.mismatches and result.upstream
    assert "override-not-applied" in {w["code"] for w in result.details[0]["warnings"]}


def test_events_reach_the_plugin_decoded(env: Environment) -> None:
    newest = env.inspector.newest_id()
    result = env.run(Case("event_auth_failure", api="auth", headers={"Authorization": "bad"},
                          hooks={"auth": edit(override(403, error="no"))}))  # fmt: skip
    assert not result.mismatches
    events = env.inspector.captures_after(newest)
    found = [c for c in events if c["kind"] == "event"]
    if not found:
        from tests.conformance.harness import deadline_wait

        found = deadline_wait(
            lambda: [c for c in env.inspector.captures_after(newest) if c["kind"] == "event"], 10, "the event"
        )
    detail = env.inspector.detail(found[0]["id"])
    assert "event" in detail, sorted(detail)
    payload = detail["event"]["payload"]
    # The coprocess event wrapper: {"message": {"Type", "Meta", "TimeStamp"}, "handler_name", "spec"}.
    assert payload["message"]["Type"] == "AuthFailure" and payload["handler_name"] == "auth_event"
    assert detail["event"]["originating_request"].startswith("GET /auth/anything")


def test_id_extractor_caching_skips_the_plugin(env: Environment) -> None:
    import time

    deadline = int(time.time()) + 60
    first = env.run(Case("authx_first", api="authx", headers={"Authorization": "cached-cred"},
                         hooks={"auth": edit(allow(token="cached-1", id_extractor_deadline=deadline))}))  # fmt: skip
    assert not first.mismatches
    auth = next(d["outcome"]["auth"] for d in first.details if d["outcome"]["auth"] is not None)
    assert "until" in auth["caching"]
    second = env.run(Case("authx_second", api="authx", headers={"Authorization": "cached-cred"}))
    assert [call[0].hook_name for call in second.calls if call[0].hook_name == "authx_auth"] == []
    assert second.client.status == 200
