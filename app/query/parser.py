"""The filter language (docs/filters.md): one parser for the page, the API, exports and routing rules.

Pure: text in, a tree of terms out (or a QueryError with the position and what was expected).
What a term means for a capture is app.query.matcher's business.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import regex

MAX_QUERY_LENGTH = 1000
MAX_REGEX_LENGTH = 256
MAX_TERMS = 64
MAX_DEPTH = 32

# A value's kind decides how it compares: identifiers (hook type, API ID, ...) match whole,
# text (paths, bodies, header values, free words) matches anywhere; both ignore case.
FieldKind = Literal["ident", "text", "number", "header", "journey"]

FIELDS: dict[str, FieldKind] = {
    "kind": "ident",
    "hook": "ident",
    "name": "ident",
    "api": "ident",
    "org": "ident",
    "method": "ident",
    "answered": "ident",
    "rule": "ident",
    "shadow": "ident",
    "fault": "ident",
    "warn": "ident",
    "path": "text",
    "body": "text",
    "peer": "text",
    "status": "number",
    "dur": "number",
    "size": "number",
    "id": "number",
    "h": "header",
    "meta": "header",
    "journey": "journey",
}
ALIASES = {
    "hook_type": "hook",
    "type": "hook",
    "hook_name": "name",
    "api_id": "api",
    "org_id": "org",
    "duration": "dur",
    "header": "h",
    "warning": "warn",
    "answered_by": "answered",
    "metadata": "meta",
}
FLAGS = ("modified", "error", "imported", "truncated", "replay", "warnings")
KEYWORDS = ("and", "or", "not")
# What else a hook's outcome can be besides an HTTP status (docs/outcome.md).
STATUS_WORDS = ("continue", "dropped")

# Units: durations in milliseconds, sizes in bytes.
DURATION_UNITS = {"": 1.0, "us": 0.001, "µs": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2, "mib": 1024**2}

_NUMBER = re.compile(
    r"(?P<op>>=|<=|>|<|=)?(?P<a>\d+(?:\.\d+)?)(?P<ua>[a-zµ]*)(?:(?:-|\.\.)(?P<b>\d+(?:\.\d+)?)(?P<ub>[a-zµ]*))?",
    re.IGNORECASE,
)
_STATUS_CLASS = re.compile(r"([1-9])xx", re.IGNORECASE)
_FIELD_NAME = re.compile(r"([A-Za-z_]+):")
_DELIMITERS = " \t\r\n()"


class QueryError(ValueError):
    """A query that cannot be parsed: where (a 0-based character offset) and what was expected there."""

    def __init__(self, message: str, position: int, expected: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.position = position
        self.expected = expected

    def __str__(self) -> str:
        where = f"at {self.position}: {self.message}"
        return f"{where}; expected {self.expected}" if self.expected else where

    def as_json(self) -> dict[str, Any]:
        return {"message": self.message, "position": self.position, "expected": self.expected}


# --- values -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Text:
    """Literal text; `exact` for quoted values of identifier fields and quoted free phrases alike."""

    text: str
    quoted: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"type": "text", "text": self.text, "quoted": self.quoted}


@dataclass(frozen=True, slots=True)
class Glob:
    """A value with `*` wildcards, matched against the whole field."""

    pattern: str

    def as_json(self) -> dict[str, Any]:
        return {"type": "glob", "pattern": self.pattern}


@dataclass(frozen=True, slots=True)
class Regex:
    """A /regex/, searched anywhere in the field, ignoring case."""

    pattern: str
    compiled: regex.Pattern[str] = field(compare=False, repr=False)

    def as_json(self) -> dict[str, Any]:
        return {"type": "regex", "pattern": self.pattern}


StringValue = Text | Glob | Regex


@dataclass(frozen=True, slots=True)
class Range:
    """A number range, both ends included (None: open); `any` matches whenever the field has a value."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    any: bool = False

    def contains(self, value: float | None) -> bool:
        if value is None:
            return False
        if self.any:
            return True
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (self.high is not None and (value > self.high or (self.high_open and value == self.high)))

    def as_json(self) -> dict[str, Any]:
        if self.any:
            return {"type": "range", "any": True}
        return {
            "type": "range",
            "low": self.low,
            "high": self.high,
            "low_open": self.low_open,
            "high_open": self.high_open,
        }


@dataclass(frozen=True, slots=True)
class Header:
    """`h:Name` (present) or `h:Name=value`; the name matches whole, the value anywhere."""

    name: StringValue
    value: StringValue | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "type": "header",
            "name": self.name.as_json(),
            "value": None if self.value is None else self.value.as_json(),
        }


Value = StringValue | Range | Header


# --- the tree ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Term:
    """`field:value`, a flag (`modified`), or free text (field None)."""

    field: str | None
    value: Value | None
    start: int
    end: int
    flag: str | None = None

    def as_json(self) -> dict[str, Any]:
        if self.flag is not None:
            return {"op": "flag", "flag": self.flag, "start": self.start, "end": self.end}
        return {
            "op": "term" if self.field else "text",
            "field": self.field,
            "value": None if self.value is None else self.value.as_json(),
            "start": self.start,
            "end": self.end,
        }


@dataclass(frozen=True, slots=True)
class Not:
    item: Node

    def as_json(self) -> dict[str, Any]:
        return {"op": "not", "item": self.item.as_json()}


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]

    def as_json(self) -> dict[str, Any]:
        return {"op": "and", "items": [i.as_json() for i in self.items]}


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]

    def as_json(self) -> dict[str, Any]:
        return {"op": "or", "items": [i.as_json() for i in self.items]}


Node = Term | Not | And | Or


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed query; `root` None matches everything (the empty query)."""

    text: str
    root: Node | None

    def terms(self) -> Iterator[Term]:
        return _terms(self.root)

    def as_json(self) -> dict[str, Any]:
        return {"q": self.text, "ast": None if self.root is None else self.root.as_json()}


def _terms(node: Node | None) -> Iterator[Term]:
    if isinstance(node, Term):
        yield node
    elif isinstance(node, Not):
        yield from _terms(node.item)
    elif isinstance(node, And | Or):
        for item in node.items:
            yield from _terms(item)


# --- tokens -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: Literal["(", ")", "not", "and", "or", "term", "end"]
    start: int
    end: int
    term: Term | None = None


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def tokens(self) -> list[_Token]:
        tokens: list[_Token] = []
        text = self.text
        while True:
            while self.pos < len(text) and text[self.pos].isspace():
                self.pos += 1
            if self.pos >= len(text):
                tokens.append(_Token("end", self.pos, self.pos))
                return tokens
            start = self.pos
            char = text[start]
            if char in "()":
                self.pos += 1
                tokens.append(_Token(char, start, self.pos))  # type: ignore[arg-type]
            elif char == "!" or (char == "-" and start + 1 < len(text) and text[start + 1] not in _DELIMITERS):
                self.pos += 1
                tokens.append(_Token("not", start, self.pos))
            else:
                tokens.append(self._term_or_keyword(start))

    def _term_or_keyword(self, start: int) -> _Token:
        text = self.text
        char = text[start]
        if char == '"':
            phrase = self._quoted(start)
            return _Token("term", start, self.pos, Term(None, phrase, start, self.pos))
        if char == "/" and (pattern := self._regex(start)) is not None:
            return _Token("term", start, self.pos, Term(None, pattern, start, self.pos))
        named = _FIELD_NAME.match(text, start)
        if named:
            name = named.group(1).lower()
            name = ALIASES.get(name, name)
            if name in FIELDS:
                self.pos = named.end()
                value = self._field_value(name, self.pos)
                return _Token("term", start, self.pos, Term(name, value, start, self.pos))
            close = difflib.get_close_matches(name, [*FIELDS, *ALIASES], n=1, cutoff=0.75)
            if close:
                suggestion = f"a field such as {close[0]!r} (quote text to search it)"
                raise QueryError(f"unknown field {named.group(1)!r}", start, suggestion)
        word = self._bare(start)
        lowered = word.lower()
        if lowered in KEYWORDS:
            return _Token(lowered, start, self.pos)  # type: ignore[arg-type]
        if lowered in FLAGS:
            return _Token("term", start, self.pos, Term(None, None, start, self.pos, flag=lowered))
        return _Token("term", start, self.pos, Term(None, _text_value(word, start), start, self.pos))

    def _bare(self, start: int) -> str:
        end = start
        while end < len(self.text) and self.text[end] not in _DELIMITERS:
            end += 1
        self.pos = end
        return self.text[start:end]

    def _quoted(self, start: int) -> Text:
        out: list[str] = []
        i = start + 1
        text = self.text
        while i < len(text):
            char = text[i]
            if char == "\\" and i + 1 < len(text):
                out.append(text[i + 1])
                i += 2
                continue
            if char == '"':
                self.pos = i + 1
                return Text("".join(out), quoted=True)
            out.append(char)
            i += 1
        raise QueryError("unterminated quote", start, 'a closing "')

    def _regex(self, start: int) -> Regex | None:
        """A /regex/ when a closing slash ends the token; else None (the text is a plain word)."""
        text = self.text
        i = start + 1
        while i < len(text):
            char = text[i]
            if char == "\\":
                i += 2
                continue
            if char == "/" and (i + 1 == len(text) or text[i + 1] in _DELIMITERS) and i > start + 1:
                self.pos = i + 1
                return compile_regex(text[start + 1 : i], start)
            i += 1
        return None

    def _string_value(self, start: int, stop: str = "") -> StringValue:
        """A quoted, /regex/ or bare value starting at `start`; a bare one also ends at `stop` characters."""
        text = self.text
        if start < len(text) and text[start] == '"':
            return self._quoted(start)
        if start < len(text) and text[start] == "/" and (pattern := self._regex(start)) is not None:
            return pattern
        end = start
        while end < len(text) and text[end] not in _DELIMITERS and text[end] not in stop:
            end += 1
        self.pos = end
        return _text_value(text[start:end], start)

    def _field_value(self, name: str, start: int) -> Value:
        kind = FIELDS[name]
        text = self.text
        if start >= len(text) or text[start] in _DELIMITERS:
            raise QueryError(f"{name}: needs a value", start, _EXPECTED[kind])
        if kind == "header":
            header_name = self._string_value(start, stop="=")
            if isinstance(header_name, Text) and not header_name.text:
                raise QueryError(f"{name}: needs a name", start, "a header name, e.g. h:X-Request-Id=abc")
            if self.pos < len(text) and text[self.pos] == "=":
                value_start = self.pos + 1
                if value_start >= len(text) or text[value_start] in _DELIMITERS:
                    raise QueryError(f"{name}: '=' needs a value", value_start, 'a value (quote an empty one: "")')
                return Header(header_name, self._string_value(value_start))
            return Header(header_name)
        if kind == "number":
            word = self._bare(start)
            return _number(name, word, start)
        value = self._string_value(start)
        if isinstance(value, Text) and not value.text and not value.quoted:
            raise QueryError(f"{name}: needs a value", start, _EXPECTED[kind])
        return value


_EXPECTED: dict[FieldKind, str] = {
    "ident": "a value, e.g. hook:pre",
    "text": 'text, a "quoted phrase" or a /regex/',
    "number": "a number, a comparison (>100) or a range (200-299)",
    "header": "a header name, optionally =value",
    "journey": "a capture id or a correlation id",
}


def _text_value(word: str, start: int) -> StringValue:
    if "*" in word:
        if len(word) > MAX_REGEX_LENGTH:
            raise QueryError(f"pattern longer than {MAX_REGEX_LENGTH} characters", start, "a shorter pattern")
        return Glob(word)
    return Text(word)


def compile_regex(pattern: str, position: int = 0) -> Regex:
    """A /regex/ term; the pattern is bounded in length and, when matched, in time (see matcher)."""
    if len(pattern) > MAX_REGEX_LENGTH:
        raise QueryError(f"regex longer than {MAX_REGEX_LENGTH} characters", position, "a shorter regex")
    try:
        compiled = regex.compile(pattern, regex.IGNORECASE | regex.VERSION0)
    except regex.error as exc:
        offset = getattr(exc, "pos", None)
        offset = offset if isinstance(offset, int) else 0
        message = getattr(exc, "msg", str(exc))
        raise QueryError(f"invalid regex: {message}", position + 1 + offset, "a valid regular expression") from None
    return Regex(pattern, compiled)


def glob_regex(pattern: str) -> regex.Pattern[str]:
    """A `*` glob as an anchored, case-insensitive regex."""
    parts = (regex.escape(part) for part in pattern.split("*"))
    return regex.compile("^" + ".*".join(parts) + "$", regex.IGNORECASE | regex.DOTALL)


def _number(name: str, word: str, start: int) -> Range | Text:
    if word == "*":
        return Range(any=True)
    if name == "status" and word.lower() in STATUS_WORDS:
        return Text(word.lower())
    if name == "status" and (klass := _STATUS_CLASS.fullmatch(word)):
        base = int(klass.group(1)) * 100
        return Range(base, base + 99)
    match = _NUMBER.fullmatch(word)
    if not match:
        raise QueryError(f"{name}: {word!r} is not a number", start, _EXPECTED["number"])
    units = DURATION_UNITS if name == "dur" else SIZE_UNITS if name == "size" else {"": 1}
    # "1-2s": a unit given once applies to both ends.
    low = _scaled(name, match.group("a"), match.group("ua") or match.group("ub") or "", units, start)
    if match.group("b") is not None:
        if match.group("op"):
            raise QueryError(f"{name}: a range takes no comparison", start, "either >N or N-M")
        high = _scaled(name, match.group("b"), match.group("ub") or match.group("ua"), units, start)
        if high < low:
            raise QueryError(f"{name}: range {word!r} ends below its start", start, "a range low-high")
        return Range(low, high)
    op = match.group("op") or "="
    if op == "=":
        return Range(low, low)
    if op == ">":
        return Range(low=low, low_open=True)
    if op == ">=":
        return Range(low=low)
    if op == "<":
        return Range(high=low, high_open=True)
    return Range(high=low)


def _scaled(name: str, number: str, unit: str, units: dict[str, Any], start: int) -> float:
    unit = unit.lower()
    if unit not in units:
        known = ", ".join(u for u in units if u) or "none"
        raise QueryError(f"{name}: unknown unit {unit!r}", start, f"one of: {known}")
    return float(number) * float(units[unit])


# --- the parser -------------------------------------------------------------------------------


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.index = 0
        self.depth = 0

    @property
    def current(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def parse(self) -> Node | None:
        if self.current.kind == "end":
            return None
        node = self.either()
        token = self.current
        if token.kind != "end":
            what = "')' without a matching '('" if token.kind == ")" else f"{token.kind!r}"
            raise QueryError(f"unexpected {what}", token.start, "a term, 'and', 'or' or the end")
        return node

    def either(self) -> Node:
        items = [self.both()]
        while self.current.kind == "or":
            self.advance()
            items.append(self.both())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def both(self) -> Node:
        items = [self.unary()]
        while self.current.kind in ("and", "term", "not", "("):
            if self.current.kind == "and":
                self.advance()
            items.append(self.unary())
        return items[0] if len(items) == 1 else And(tuple(items))

    def unary(self) -> Node:
        token = self.current
        if token.kind == "not":
            self.advance()
            return Not(self._nested(self.unary))
        if token.kind == "(":
            self.advance()
            node = self._nested(self.either)
            if self.current.kind != ")":
                raise QueryError(f"'(' at {token.start} is not closed", self.current.start, "')'")
            self.advance()
            return node
        if token.kind == "term":
            self.advance()
            assert token.term is not None
            return token.term
        what = {"end": "end of query", ")": "')'"}.get(token.kind, repr(token.kind))
        raise QueryError(f"unexpected {what}", token.start, "a term")

    def _nested(self, parse: Any) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise QueryError(f"nested deeper than {MAX_DEPTH}", self.current.start, "fewer parentheses")
        try:
            node: Node = parse()
        finally:
            self.depth -= 1
        return node


def parse(text: str) -> Query:
    """Parse a query; raise QueryError with the position and what was expected."""
    if len(text) > MAX_QUERY_LENGTH:
        raise QueryError(f"query longer than {MAX_QUERY_LENGTH} characters", MAX_QUERY_LENGTH, "a shorter query")
    tokens = _Scanner(text).tokens()
    terms = sum(1 for t in tokens if t.kind == "term")
    if terms > MAX_TERMS:
        raise QueryError(f"more than {MAX_TERMS} terms", tokens[-1].start, "fewer terms")
    return Query(text, _Parser(tokens).parse())
