"""User-written patterns have a cost bounded by construction: regexes on RE2 within caps, the
constructs RE2 cannot do refused by name, and `*` globs matched by a linear matcher."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.capture.record import INLINE_READ_BYTES, Capture
from app.proxy.rules import rule_query
from app.query.matcher import RULE_TEXT_CHARS, compile_query
from app.query.parser import QueryError, parse
from app.query.pattern import MAX_PROGRAM_SIZE, MAX_REPEAT, PatternError, Wildcards, compile_regex
from protogen import coprocess_common_pb2 as common
from protogen import coprocess_object_pb2 as pb

BOMBS = [
    "((a{255}){255}){255}",  # 11 s and 4.3 GB with the backtracking engine
    "(?:a{65535}){65535}",  # more than 6 GB
    "(a{100}){100}",
    "(?:.{1,100}){10}",
    "x{1000}",
]


@pytest.mark.parametrize("bomb", BOMBS)
def test_a_regex_bomb_is_refused_at_compile_time(bomb: str) -> None:
    with pytest.raises(PatternError) as caught:
        compile_regex(bomb)
    assert any(word in caught.value.message for word in (f"above {MAX_REPEAT}", "too complex", "repetition"))


def test_a_counted_repetition_within_the_caps_compiles() -> None:
    assert compile_regex("(a{30}){30}").search("a" * 900)
    assert compile_regex(f"x{{2,{MAX_REPEAT}}}").search("xx")
    assert compile_regex("[{]a{,3}").search("{a{,3}")  # `{,3}` is literal text, as in RE2
    assert compile_regex("a{2}").program_size <= MAX_PROGRAM_SIZE


@pytest.mark.parametrize(
    ("regex", "named"),
    [
        (r"(a)\1", r"backreference \1"),
        (r"(?P<x>a)(?P=x)", "named backreference (?P=…)"),
        (r"(a)\g<1>", r"backreference \g<…>"),
        (r"(?<x>a)\k<x>", r"named backreference \k<…>"),
        ("foo(?=bar)", "look-ahead (?=…)"),
        ("foo(?!bar)", "negative look-ahead (?!…)"),
        ("(?<=foo)bar", "look-behind (?<=…)"),
        ("(?<!foo)bar", "negative look-behind (?<!…)"),
        ("(?>a+)b", "atomic group (?>…)"),
        ("a++b", "possessive quantifier (…+)"),
        ("a{2,3}+b", "possessive quantifier (…+)"),
        ("(?:order){e<=1}", "fuzzy matching {e<=1}"),
        ("(?:order){i<=2,d<=1}", "fuzzy matching {i<=2,d<=1}"),
        ("(a)(?(1)b|c)", "conditional (?(…)…)"),
        ("(a(?R)?b)", "recursion (?R)"),
        ("(a(?1)?b)", "recursion (?1)"),
        (r"abc\Z", r"\Z (use \z or $)"),
    ],
)
def test_what_re2_cannot_do_is_named(regex: str, named: str) -> None:
    with pytest.raises(PatternError) as caught:
        compile_regex(regex)
    assert caught.value.message == f"{named} is not supported"
    # In a query it is a QueryError pointing at the construct.
    with pytest.raises(QueryError, match="is not supported") as in_query:
        parse(f"body:/{regex}/")
    assert in_query.value.position == len("body:/") + caught.value.offset


@pytest.mark.parametrize("regex", [r"[(?=]x", r"\(\?=", r"a+?b", r"a*?", r"\{e<=1\}", r"(?i)a", r"(?:a)"])
def test_look_alikes_inside_classes_or_escapes_are_not_refused(regex: str) -> None:
    compile_regex(regex)


def test_an_invalid_regex_says_where() -> None:
    with pytest.raises(QueryError) as caught:
        parse("/a(/")
    assert caught.value.position == 3 and "missing )" in caught.value.message


def test_a_backtracking_pattern_is_linear_on_re2() -> None:
    evil = compile_regex("(a|aa)+$")
    assert not evil.search("a" * 100_000 + "!")
    assert compile_regex("(x+x+)+y").search("x" * 50_000 + "y")


def test_regexes_ignore_case_and_match_unicode() -> None:
    assert compile_regex("ORDERS").search("/v1/orders")
    assert compile_regex("é.+ü").search("ÉtÜ")


# --- wildcards -----------------------------------------------------------------------------------


def test_a_wildcard_bomb_is_one_pass() -> None:
    pattern = "*a" * 120 + "*b"
    text = "a" * 200_000  # every `a` part found at once; the final `b` is looked for once
    assert not Wildcards.of(pattern).whole(text)
    assert not Wildcards.of(pattern).within_a_line(text)
    assert Wildcards.of(pattern).whole(text + "b")


def _reference(pattern: str, whole: bool) -> re.Pattern[str]:
    body = ".*".join(re.escape(p) for p in pattern.split("*"))
    return re.compile(body, re.DOTALL) if whole else re.compile(body)


@given(
    st.text(alphabet="ab*", max_size=8),
    st.text(alphabet="ab\n", max_size=16),
)
def test_wildcards_match_as_the_equivalent_regex(pattern: str, text: str) -> None:
    wildcards = Wildcards.of(pattern)
    assert wildcards.whole(text) == (_reference(pattern, True).fullmatch(text) is not None)
    assert wildcards.within_a_line(text) == (_reference(pattern, False).search(text) is not None)


def test_a_rules_file_regex_re2_cannot_run_is_a_rules_error(tmp_path: Path) -> None:
    from app.proxy.rules import RulesError, load_rules

    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - match: {query: 'path:/(?<=v1)orders/'}\n    action: echo\n")
    with pytest.raises(RulesError, match=r"look-behind \(\?<=…\) is not supported"):
        load_rules(path)
    path.write_text("rules:\n  - match: {query: 'path:/((a{255}){255}){255}/'}\n    action: echo\n")
    with pytest.raises(RulesError, match=r"repetition \{255\} counts above 100"):
        load_rules(path)


def _with_path(path: str, request: bytes = b"") -> Capture:
    capture = Capture(kind="dispatch", request=request, reply=request)
    capture.path = path
    return capture


def test_a_rule_matches_the_first_characters_of_each_text_only() -> None:
    # A rule runs inline on the gateway's call: whatever the path's size, it looks at a bounded prefix.
    near, far = "/a" + "x" * 100 + "needle", "/a" + "x" * RULE_TEXT_CHARS + "needle"
    for text in ("path:/needle/", "path:*needle*", "path:needle"):
        rule = rule_query(text)
        assert rule.matches(_with_path(near)) and not rule.matches(_with_path(far)), text
        assert compile_query(text).matches(_with_path(far)), text  # a query reads the whole path


def test_a_rule_sees_only_the_summary_of_a_message_too_large_to_parse_on_the_call_path() -> None:
    obj = pb.Object(hook_type=common.Pre)
    obj.request.url = "/orders"
    obj.request.headers["X-Tenant"] = "blue"
    small = obj.SerializeToString()
    obj.request.raw_body = b"x" * INLINE_READ_BYTES
    large = obj.SerializeToString()
    rule = rule_query("h:x-tenant=blue path:/orders")
    assert rule.matches(_with_path("/orders", small))
    assert not rule.matches(_with_path("/orders", large))
    assert rule_query("path:/orders").matches(_with_path("/orders", large))
