"""The filter language: parsing (terms, operators, positions of errors) and what each term matches."""

from __future__ import annotations

import gzip
import time
from typing import Any

import pytest

from app.capture.record import Capture, summarize_event, summarize_object
from app.query.matcher import Budget, QueryTooSlow, Searcher, compile_query
from app.query.parser import MAX_QUERY_LENGTH, MAX_REGEX_LENGTH, QueryError, Range, parse
from app.redaction.redact import Redactor
from protogen import coprocess_object_pb2 as pb
from tests.conftest import load_event, load_object


def ast(q: str) -> Any:
    return parse(q).as_json()["ast"]


def shape(tree: Any) -> Any:
    """A tree without its character positions."""
    if isinstance(tree, dict):
        return {k: shape(v) for k, v in tree.items() if k not in ("start", "end")}
    if isinstance(tree, list):
        return [shape(i) for i in tree]
    return tree


def term(field: str | None, value: dict[str, Any], start: int, end: int) -> dict[str, Any]:
    return {"op": "term" if field else "text", "field": field, "value": value, "start": start, "end": end}


def text(t: str, quoted: bool = False) -> dict[str, Any]:
    return {"type": "text", "text": t, "quoted": quoted}


# --- parsing --------------------------------------------------------------------------------------


def test_empty_query_matches_everything() -> None:
    assert parse("").root is None and parse("   ").root is None
    assert compile_query("").matches(Capture(kind="dispatch", request=b"", reply=b""))


def test_field_term_with_positions() -> None:
    assert ast("hook:pre") == term("hook", text("pre"), 0, 8)
    assert ast("  api:abc") == term("api", text("abc"), 2, 9)


def test_field_names_ignore_case_and_aliases() -> None:
    assert ast("HOOK:Pre")["field"] == "hook"
    assert ast("hook_type:Pre")["field"] == "hook"
    assert ast("api_id:x")["field"] == "api"
    assert ast("duration:>1s")["field"] == "dur"


def test_juxtaposition_is_and() -> None:
    tree = ast("hook:pre api:x")
    assert tree["op"] == "and" and [i["field"] for i in tree["items"]] == ["hook", "api"]
    assert shape(ast("hook:pre and api:x")) == shape(tree)
    assert shape(ast("hook:pre AND api:x")) == shape(tree)


def test_or_binds_looser_than_and() -> None:
    tree = ast("a b or c")
    assert tree["op"] == "or"
    assert tree["items"][0]["op"] == "and" and tree["items"][1]["value"]["text"] == "c"


def test_parentheses_group() -> None:
    tree = ast("(a or b) c")
    assert tree["op"] == "and" and tree["items"][0]["op"] == "or"


@pytest.mark.parametrize("q", ["!modified", "-modified", "not modified", "NOT modified", "! modified"])
def test_negations(q: str) -> None:
    assert ast(q) == {"op": "not", "item": {"op": "flag", "flag": "modified", "start": len(q) - 8, "end": len(q)}}


def test_dash_inside_a_word_is_not_negation() -> None:
    assert ast("x-request-id") == term(None, text("x-request-id"), 0, 12)
    assert ast("-")["value"]["text"] == "-"  # a lone dash is text


def test_quoted_phrases_and_escapes() -> None:
    assert ast('"two words"') == term(None, text("two words", quoted=True), 0, 11)
    assert ast(r'"say \"hi\""')["value"]["text"] == 'say "hi"'
    assert ast('path:"/a b"')["value"] == text("/a b", quoted=True)
    assert ast('"or"')["value"]["text"] == "or"  # a quoted keyword is text
    assert ast('"modified"')["op"] == "text"  # a quoted flag is text


def test_regex_terms() -> None:
    assert ast("/ord.rs/") == term(None, {"type": "regex", "pattern": "ord.rs"}, 0, 8)
    assert ast("body:/a b/")["value"] == {"type": "regex", "pattern": "a b"}  # a regex may hold spaces
    assert ast(r"path:/^\/v1\//")["value"] == {"type": "regex", "pattern": r"^\/v1\/"}
    assert ast("(/a|b/)")["value"] == {"type": "regex", "pattern": "a|b"}


def test_a_path_is_not_a_regex_unless_enclosed_in_slashes() -> None:
    assert ast("path:/orders")["value"] == text("/orders")
    assert ast("path:/orders/1")["value"] == text("/orders/1")
    assert ast("/orders")["value"] == text("/orders")
    assert ast("path:/v1/x/")["value"] == {"type": "regex", "pattern": "v1/x"}


def test_globs() -> None:
    assert ast("api:b84f*")["value"] == {"type": "glob", "pattern": "b84f*"}
    assert ast("warn:*")["value"] == {"type": "glob", "pattern": "*"}


def test_header_terms() -> None:
    header = {"type": "header", "name": text("X-Request-Id"), "value": text("7f3c")}
    assert ast("h:X-Request-Id=7f3c")["value"] == header
    assert ast("h:Authorization")["value"] == {"type": "header", "name": text("Authorization"), "value": None}
    assert ast('h:X-A="a b"')["value"]["value"] == text("a b", quoted=True)
    assert ast("h:X-A=/^ab/")["value"]["value"] == {"type": "regex", "pattern": "^ab"}
    assert ast("h:x-*=1")["value"]["name"] == {"type": "glob", "pattern": "x-*"}


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("status:404", Range(404, 404)),
        ("status:4xx", Range(400, 499)),
        ("status:5XX", Range(500, 599)),
        ("status:200-299", Range(200, 299)),
        ("status:200..299", Range(200, 299)),
        ("status:>=500", Range(low=500)),
        ("status:<300", Range(high=300, high_open=True)),
        ("status:*", Range(any=True)),
        ("dur:>100ms", Range(low=100, low_open=True)),
        ("dur:>100", Range(low=100, low_open=True)),
        ("dur:>1s", Range(low=1000, low_open=True)),
        ("dur:<=250us", Range(high=0.25)),
        ("dur:1-2s", Range(1000, 2000)),
        ("size:>1kb", Range(low=1024, low_open=True)),
        ("size:1mib", Range(1024**2, 1024**2)),
        ("id:10-20", Range(10, 20)),
        ("id:=7", Range(7, 7)),
    ],
)
def test_number_values(q: str, expected: Range) -> None:
    value = parse(q).root
    assert value is not None and getattr(value, "value", None) == expected


def test_flags_are_reserved_words() -> None:
    for flag in ("modified", "error", "imported", "truncated", "replay", "warnings"):
        assert ast(flag)["op"] == "flag"


def test_unknown_words_with_a_colon_are_text() -> None:
    assert ast("http://x")["op"] == "text"
    assert ast("Content-Type:json")["op"] == "text"


@pytest.mark.parametrize(
    ("q", "position", "expected"),
    [
        ("(hook:pre", 9, "')'"),
        ("hook:pre)", 8, "a term, 'and', 'or' or the end"),
        (")", 0, "a term"),
        ("hook:pre or", 11, "a term"),
        ("or hook:pre", 0, "a term"),
        ("hook:pre and", 12, "a term"),
        ("!", 1, "a term"),
        ("()", 1, "a term"),
        ("hook:", 5, "a value, e.g. hook:pre"),
        ("hook: pre", 5, "a value, e.g. hook:pre"),
        ("status:abc", 7, "a number, a comparison (>100) or a range (200-299)"),
        ("status:300-200", 7, "a range low-high"),
        ("status:>2-3", 7, "either >N or N-M"),
        ("dur:5parsecs", 4, "one of: us, µs, ms, s, m"),
        ("size:5kg", 5, "one of: b, k, kb, kib, m, mb, mib"),
        ('"abc', 0, 'a closing "'),
        ('body:"abc', 5, 'a closing "'),
        ("/a(/", 3, "a valid regular expression"),
        ("h:=x", 2, "a header name, e.g. h:X-Request-Id=abc"),
        ("h:X-A=", 6, 'a value (quote an empty one: "")'),
        ("stauts:4xx", 0, "a field such as 'status' (quote text to search it)"),
        ("x (y", 4, "')'"),
    ],
)
def test_errors_say_where_and_what_was_expected(q: str, position: int, expected: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse(q)
    assert (caught.value.position, caught.value.expected) == (position, expected)
    assert str(caught.value).startswith(f"at {position}: ")


def test_bounds() -> None:
    with pytest.raises(QueryError, match="longer than"):
        parse("a" * (MAX_QUERY_LENGTH + 1))
    with pytest.raises(QueryError, match="regex longer than"):
        parse("/" + "a" * (MAX_REGEX_LENGTH + 1) + "/")
    with pytest.raises(QueryError, match="nested deeper"):
        parse("(" * 40 + "a" + ")" * 40)
    with pytest.raises(QueryError, match="more than 64 terms"):
        parse(" ".join(["a"] * 65))


# --- matching -------------------------------------------------------------------------------------


def capture_of(name: str, reply: pb.Object | None = None, **fields: Any) -> Capture:
    request = load_object(name).SerializeToString()
    capture = Capture(kind="dispatch", request=request, reply=request if reply is None else reply.SerializeToString())
    summarize_object(capture, pb.Object.FromString(request))
    for key, value in fields.items():
        setattr(capture, key, value)
    return capture


def event_capture() -> Capture:
    capture = Capture(kind="event", request=load_event("event-auth-failure.json").SerializeToString(), reply=b"")
    summarize_event(capture, pb.Event.FromString(capture.request))
    return capture


@pytest.fixture
def captures() -> dict[str, Capture]:
    overridden = load_object("pre.json")
    overridden.request.return_overrides.response_code = 401
    overridden.request.set_headers["X-Added"] = "yes"
    found = {
        "pre": capture_of("pre.json", id=1, duration_ns=2_000_000, metadata=(("traceparent", "00-abc-def-01"),)),
        "auth": capture_of("custom-key-check.json", id=2, duration_ns=150_000_000),
        "post": capture_of("post-json-body.json", id=3, answered_by="upstream", rule="orders"),
        "gzip": capture_of("response-gzip.json", id=4),
        "redirect": capture_of("response-petstore-301.json", id=5, error="upstream down"),
        "modified": capture_of("pre.json", reply=overridden, id=6),
        "event": event_capture(),
    }
    found["event"].id = 7
    return found


def matching(q: str, captures: dict[str, Capture], redactor: Redactor | None = None) -> list[str]:
    matcher = compile_query(q, Searcher(redactor=redactor or Redactor(enabled=False)))
    return [name for name, capture in captures.items() if matcher.matches(capture)]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("hook:pre", ["pre", "modified"]),
        ("hook:PRE", ["pre", "modified"]),
        ("hook:auth", ["auth"]),
        ("hook:customkeycheck", ["auth"]),
        ("hook:Response", ["gzip", "redirect"]),
        ("hook:AuthFailure", ["event"]),
        ("hook:p*", ["pre", "post", "modified"]),  # Pre, Post, PostKeyAuth would too
        ("hook:/^post/", ["post"]),
        ("kind:event", ["event"]),
        ("-kind:event", ["pre", "auth", "post", "gzip", "redirect", "modified"]),
        ("name:MyPreHook", ["pre", "modified"]),
        ("name:mypre", []),  # identifiers match whole
        ("name:mypre*", ["pre", "modified"]),
        ("api:ce6528c0af7b43206b9cf736a5e5d1b4", ["redirect"]),
        ("method:post", ["post"]),
        ("path:orders/1234", ["auth", "gzip", "event"]),  # text matches anywhere
        ("path:/orders-api/v1/orders?*", ["pre", "post", "modified"]),  # a glob matches the whole path
        ("status:301", ["redirect"]),
        ("status:3xx", ["redirect"]),
        ("status:200-399", ["gzip", "redirect"]),
        ("status:*", ["auth", "gzip", "redirect", "modified"]),  # the effective status (the outcome)
        ("!status:*", ["pre", "post", "event"]),
        ("status:401", ["modified"]),  # a return override
        ("status:403", ["auth"]),  # an auth reply without a session: refused
        ("status:4xx", ["auth", "modified"]),
        ("status:continue", ["pre", "post"]),  # the chain goes on
        ("status:dropped", []),
        ("dur:>100ms", ["auth"]),
        ("dur:1ms-3ms", ["pre"]),
        ("id:2-3", ["auth", "post"]),
        ("answered:upstream", ["post"]),
        ("rule:orders", ["post"]),
        ("modified", ["modified"]),
        ("error", ["redirect"]),
        ("h:X-Request-Id", ["pre", "modified"]),
        ("h:x-request-id=7f3c1e2a", ["pre", "modified"]),
        ("h:X-Added=yes", ["modified"]),  # set_headers of the reply
        ("h:content-type=json", ["post", "gzip"]),
        ("h:content-type=/^text\\//", ["redirect"]),
        ("h:User-Agent=curl", ["pre", "redirect", "modified", "event"]),  # events: the originating request's headers
        ("meta:traceparent", ["pre"]),
        ("meta:traceparent=/^00-/", ["pre"]),
        ("body:widget", []),
        ('body:"id"', ["gzip"]),  # inflated
        ("body:café", ["post"]),
        ("body:/moved perm/", ["redirect"]),
        ("tier-gold", ["post"]),  # session metadata, found in the decoded request
        ("myprehook", ["pre", "modified"]),  # summary fields, ignoring case
        ('"Auth Failure"', ["event"]),
        ("s3cr3t", ["pre", "post", "gzip", "modified"]),  # config_data in the spec
        ("hook:pre or hook:auth", ["pre", "auth", "modified"]),
        ("(hook:pre or hook:auth) !modified", ["pre", "auth"]),
        ("hook:pre -h:X-Added", ["pre"]),
        ("not (kind:dispatch)", ["event"]),
    ],
)
def test_terms_match(q: str, expected: list[str], captures: dict[str, Capture]) -> None:
    assert matching(q, captures) == expected


def test_gzip_bodies_are_searched_inflated(captures: dict[str, Capture]) -> None:
    inflated = gzip.decompress(load_object("response-gzip.json").response.raw_body).decode()
    word = "sku"
    assert word in inflated
    assert word and word.encode() not in captures["gzip"].request
    assert "gzip" in matching(f"body:{word}", captures)
    assert "gzip" in matching(word, captures)  # a free word finds it too


def test_warn_matches_lint_codes(captures: dict[str, Capture]) -> None:
    reply = load_object("pre.json")
    reply.request.set_headers["Host"] = "other.example.com"
    bad = capture_of("pre.json", reply=reply, id=9)
    assert compile_query("warn:host-in-set-headers").matches(bad)
    assert compile_query("warn:host-*").matches(bad)
    assert not compile_query("warn:method-empty").matches(bad)
    assert compile_query("warn:*").matches(bad) and compile_query("warnings").matches(bad)
    assert not compile_query("warn:*").matches(captures["pre"])


def test_redacted_values_are_never_found(captures: dict[str, Capture]) -> None:
    key = load_object("custom-key-check.json").request.headers["Authorization"]
    assert matching(key, captures) == ["auth"]  # without redaction it is there
    redactor = Redactor()
    assert matching(key, captures, redactor) == []
    assert matching(f"h:Authorization={key[:10]}", captures, redactor) == []
    assert matching("h:Authorization", captures, redactor) == ["auth", "post", "gzip", "event"]
    assert matching("bad-token", captures, redactor) == []  # the event's Key and its request's header


def test_catastrophic_regex_is_refused_not_hung() -> None:
    obj = load_object("post-json-body.json")
    obj.request.raw_body = b"a" * 5000 + b"!"
    capture = Capture(kind="dispatch", request=obj.SerializeToString(), reply=b"")
    matcher = compile_query("body:/(a|aa)+$/")
    began = time.monotonic()
    with pytest.raises(QueryTooSlow) as caught:
        matcher.matches(capture)
    assert time.monotonic() - began < 2
    assert caught.value.position == 0 and "simpler pattern" in (caught.value.expected or "")


def test_regex_budget_is_shared_by_one_evaluation() -> None:
    capture = capture_of("post-json-body.json")
    budget = Budget(seconds=0.0)
    with pytest.raises(QueryTooSlow):
        compile_query("/x/").matches(capture, budget)


@pytest.mark.parametrize(
    ("q", "problem"),
    [
        ("modified", "modified is not known before the call is answered"),
        ("warn:x", "warn: is not known before the call is answered"),
        ("dur:>1ms", "dur: is not known before the call is answered"),
        ("hello", "free text cannot be matched here"),
    ],
)
def test_rule_queries_are_limited_to_what_the_request_says(q: str, problem: str) -> None:
    from app.proxy.rules import rule_query

    with pytest.raises(QueryError, match=problem):
        rule_query(q)
    assert rule_query("hook:pre h:X-Request-Id api:b84f*").matches(capture_of("pre.json"))


@pytest.mark.parametrize(
    "q", ["tier-gold", "sku", "auth failure", "q=visible", "curl", "body:sku", "h:user-agent=curl*", "/orders?\\//"]
)
def test_answers_do_not_depend_on_the_search_cache(q: str, captures: dict[str, Capture]) -> None:
    from app.query.search import SearchViews

    redactor = Redactor()
    cold = compile_query(q, Searcher(redactor=redactor, views=SearchViews(redactor)))
    warmed_views = SearchViews(redactor)
    for capture in captures.values():
        warmed_views.get(capture)
    warm = compile_query(q, Searcher(redactor=redactor, views=warmed_views))
    uncached = compile_query(q, Searcher(redactor=redactor))
    for name, capture in captures.items():
        assert cold.matches(capture) == warm.matches(capture) == uncached.matches(capture), (q, name)
