"""What a parsed query (app.query.parser) means for a capture: one predicate for the list, the
live stream, exports and routing rules, so each shows exactly the same captures.

Regexes run with a time limit per match and per query (Python's `re` has none; the `regex`
module does), so a pathological pattern costs a bounded moment of the event loop and then fails
with a clear error instead of hanging the inspector.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

import regex

from app.capture.analysis import has_effect_of, outcome_status_of, warnings_of
from app.capture.record import Capture
from app.formats.document import snapshot
from app.query.parser import (
    And,
    Glob,
    Header,
    Node,
    Not,
    Or,
    Query,
    QueryError,
    Range,
    Regex,
    StringValue,
    Term,
    Text,
    glob_regex,
    parse,
)
from app.query.search import MAX_SEARCH_BODY_BYTES, SearchView, SearchViews, build_view, metadata_view
from app.redaction.redact import Redactor
from app.tyk.outcome import Gateway

# One regex search may take this long on one field before the query is refused...
REGEX_MATCH_SECONDS = 0.05
# ... and all the regex searches of one evaluation (a list page, an export) this long together.
REGEX_BUDGET_SECONDS = 2.0
# The loop gets a turn this often while a filter walks a large buffer.
SLICE_SECONDS = 0.005
# A capture this large has its search view built in a worker thread when a walk needs it:
# decoding and lower-casing tens of megabytes on the loop would stall the gateway's calls.
THREAD_VIEW_BYTES = 256 * 1024

HOOK_ALIASES = {"auth": "customkeycheck", "postauth": "postkeyauth"}
# Fields a routing rule can use: what is known about a call before it is answered.
REQUEST_FIELDS = frozenset({"kind", "hook", "name", "api", "org", "method", "path", "h", "meta", "body", "size", "peer",
                            "status"})  # fmt: skip


class QueryTooSlow(QueryError):
    """A regex went over its time limit; the query is refused rather than left running."""


class NamedApi(Protocol):
    """What `api:` reads of an API definition besides its ID."""

    @property
    def name(self) -> str: ...
    @property
    def listen_path(self) -> str: ...


class ApiLookup(Protocol):
    """The gateway's API definitions by API ID (app.gateway.catalog)."""

    def lookup(self, api_id: str) -> NamedApi | None: ...


class JourneyLookup(Protocol):
    """The request journeys known for captures (app.journeys.journey)."""

    def journey_id(self, capture_id: int) -> int | None: ...
    def journey_key(self, capture_id: int, redactor: Redactor) -> str | None: ...


@dataclass
class Budget:
    """Regex time left for one evaluation."""

    seconds: float = REGEX_BUDGET_SECONDS
    spent: float = 0.0

    def search(self, pattern: regex.Pattern[str], text: str, term: Term) -> bool:
        left = self.seconds - self.spent
        began = time.perf_counter()
        try:
            if left <= 0:
                raise TimeoutError
            found = pattern.search(text[:MAX_SEARCH_BODY_BYTES], timeout=min(REGEX_MATCH_SECONDS, left))
        except TimeoutError:
            raise QueryTooSlow(
                f"the pattern took too long (limit {REGEX_MATCH_SECONDS * 1000:.0f} ms per field, "
                f"{self.seconds:.0f} s per query)",
                term.start,
                "a simpler pattern (avoid nested repetition like (a+)+)",
            ) from None
        finally:
            self.spent += time.perf_counter() - began
        return found is not None


@dataclass
class Searcher:
    """What evaluating a query needs besides the capture: redaction, the view cache, journeys."""

    redactor: Redactor = field(default_factory=lambda: Redactor(enabled=False))
    views: SearchViews | None = None
    journeys: JourneyLookup | None = None
    gateway: Gateway | None = None
    """The gateway model (--tyk-version) the outcome, the effect and the lint follow."""
    apis: ApiLookup | None = None
    """API names and listen paths for `api:`."""
    request_only: bool = False
    """Routing rules: only what the request says (`status:` is the status a Response hook carries)."""

    def view(self, capture: Capture) -> SearchView:
        return self.views.get(capture) if self.views is not None else build_view(capture, self.redactor)

    def cached_view(self, capture: Capture) -> SearchView | None:
        return self.views.cached(capture) if self.views is not None else None

    async def view_in_thread(self, capture: Capture) -> SearchView:
        """The view built in a worker thread from a snapshot, then kept in the cache (on the loop)."""
        view = await asyncio.to_thread(build_view, snapshot(capture), self.redactor)
        if self.views is not None:
            self.views.put(capture, view)
        return view

    def status_of(self, capture: Capture) -> int | str | None:
        """The effective status: what the client gets from this hook (an HTTP status, "continue",
        "dropped"), from the gateway model's outcome."""
        if self.request_only:
            return capture.status
        return outcome_status_of(capture, self.gateway)


class _ViewNeeded(Exception):
    """A term needs the view of a large capture that is not built yet: the walk builds it in a thread."""


class _Subject:
    """One capture being matched; its search view is built only if a term needs it."""

    __slots__ = ("_view", "budget", "capture", "defer", "searcher")

    def __init__(
        self, capture: Capture, searcher: Searcher, budget: Budget, view: SearchView | None = None, defer: bool = False
    ) -> None:
        self.capture = capture
        self.searcher = searcher
        self.budget = budget
        self.defer = defer
        self._view = view

    @property
    def view(self) -> SearchView:
        if self._view is None:
            if self.defer and self.capture.size > THREAD_VIEW_BYTES:
                self._view = self.searcher.cached_view(self.capture)
                if self._view is None:
                    raise _ViewNeeded
            else:
                self._view = self.searcher.view(self.capture)
        return self._view


Predicate = Callable[[_Subject], bool]


@dataclass(frozen=True)
class Matcher:
    """A compiled query: `matches(capture)` for one, `filter(captures)` for a walk on the loop."""

    query: Query
    searcher: Searcher
    _predicate: Predicate | None

    def matches(self, capture: Capture, budget: Budget | None = None, view: SearchView | None = None) -> bool:
        if self._predicate is None:
            return True
        return self._predicate(_Subject(capture, self.searcher, budget or Budget(), view))

    async def view_for(self, capture: Capture, budget: Budget) -> SearchView | None:
        """A large capture's view built in a worker thread, when this query needs it and it is not cached.

        Pass it to `matches` so the check on the loop does not build it again.
        """
        if self._predicate is None or capture.size <= THREAD_VIEW_BYTES:
            return None
        try:
            self._predicate(_Subject(capture, self.searcher, budget, defer=True))
        except _ViewNeeded:
            return await self.searcher.view_in_thread(capture)
        return None

    @property
    def needs_journeys(self) -> bool:
        return any(t.field == "journey" for t in self.query.terms())

    @property
    def everything(self) -> bool:
        return self._predicate is None

    async def filter(self, captures: Iterable[Capture], budget: Budget | None = None) -> AsyncGenerator[Capture, None]:
        """The matching captures, giving the event loop a turn every few milliseconds."""
        budget = budget or Budget()
        slice_end = time.perf_counter() + SLICE_SECONDS
        for capture in captures:
            if self._predicate is None or await self._matches_off_loop(capture, budget):
                yield capture
            if time.perf_counter() > slice_end:
                await asyncio.sleep(0)
                slice_end = time.perf_counter() + SLICE_SECONDS

    async def _matches_off_loop(self, capture: Capture, budget: Budget) -> bool:
        assert self._predicate is not None
        try:
            return self._predicate(_Subject(capture, self.searcher, budget, defer=True))
        except _ViewNeeded:
            view = await self.searcher.view_in_thread(capture)
            return self._predicate(_Subject(capture, self.searcher, budget, view))


def compile_query(text: str | Query, searcher: Searcher | None = None, fields: frozenset[str] | None = None) -> Matcher:
    """Parse (if needed) and compile; `fields` limits which field terms are allowed (routing rules)."""
    query = parse(text) if isinstance(text, str) else text
    if fields is not None:
        for term in query.terms():
            if term.field is None and term.flag is None:
                raise QueryError("free text cannot be matched here", term.start, f"a field term ({_names(fields)})")
            if term.flag is not None or (term.field is not None and term.field not in fields):
                name = term.flag or f"{term.field}:"
                raise QueryError(f"{name} is not known before the call is answered", term.start,
                                 f"a field term ({_names(fields)})")  # fmt: skip
    searcher = searcher or Searcher()
    return Matcher(query, searcher, None if query.root is None else _compile(query.root, searcher))


def _names(fields: frozenset[str]) -> str:
    return ", ".join(sorted(fields))


def _compile(node: Node, searcher: Searcher) -> Predicate:
    if isinstance(node, And):
        parts = [_compile(i, searcher) for i in node.items]
        return lambda s: all(p(s) for p in parts)
    if isinstance(node, Or):
        parts = [_compile(i, searcher) for i in node.items]
        return lambda s: any(p(s) for p in parts)
    if isinstance(node, Not):
        inner = _compile(node.item, searcher)
        return lambda s: not inner(s)
    return _term(node, searcher)


def _term(term: Term, searcher: Searcher) -> Predicate:
    if term.flag is not None:
        return _FLAGS[term.flag]
    value = term.value
    if term.field is None:
        assert isinstance(value, Text | Glob | Regex)
        return _free_text(term, value)
    name = term.field
    if isinstance(value, Range):
        return _number(name, value, searcher)
    if isinstance(value, Header):
        return _header(term, value)
    assert isinstance(value, Text | Glob | Regex)
    if name == "journey":
        return _journey(term, value, searcher)
    if name in ("path", "peer", "body"):
        if name == "body":
            in_body = _string_test(term, value, whole=False, lowered=True)
            return lambda s: any(in_body(s, body) for body in s.view.bodies)
        contains = _string_test(term, value, whole=False)
        if name == "path":  # as shown: credential query values redacted
            return lambda s: contains(s, s.searcher.redactor.url(s.capture.path))
        return lambda s: contains(s, s.capture.peer)
    test = _string_test(term, value, whole=True, aliases=HOOK_ALIASES if name == "hook" else None)
    if name == "warn":
        return lambda s: any(test(s, w["code"]) for w in warnings_of(s.capture, s.searcher.gateway))
    if name == "status":  # status:dropped, status:continue
        return lambda s: test(s, str(searcher.status_of(s.capture) or ""))
    if name == "api" and searcher.apis is not None:
        return _api(test, searcher.apis)
    get = _IDENT_FIELDS[name]
    return lambda s: test(s, get(s.capture))


def _api(test: StringTest, apis: ApiLookup) -> Predicate:
    """`api:` matches the API ID, or the name or listen path the gateway's catalog gives it
    (`api:orders` finds the API listening on /orders/)."""

    def matches(s: _Subject) -> bool:
        api_id = s.capture.api_id
        if test(s, api_id):
            return True
        api = apis.lookup(api_id)
        if api is None:
            return False
        path = api.listen_path
        return test(s, api.name) or test(s, path) or (path.strip("/") != path and test(s, path.strip("/")))

    return matches


_FLAGS: dict[str, Predicate] = {
    "modified": lambda s: has_effect_of(s.capture, s.searcher.gateway),
    "error": lambda s: s.capture.error is not None,
    "imported": lambda s: s.capture.imported,
    "truncated": lambda s: s.capture.truncated,
    "replay": lambda s: s.capture.replay_of is not None,
    "warnings": lambda s: bool(warnings_of(s.capture, s.searcher.gateway)),
}
_IDENT_FIELDS: dict[str, Callable[[Capture], str]] = {
    "kind": lambda c: c.kind,
    "hook": lambda c: c.hook_type,
    "name": lambda c: c.hook_name,
    "api": lambda c: c.api_id,
    "org": lambda c: c.org_id,
    "method": lambda c: c.method,
    "answered": lambda c: c.answered_by,
    "rule": lambda c: c.rule or "",
    "shadow": lambda c: c.shadow or "",
    "fault": lambda c: c.fault or "",
}


StringTest = Callable[[_Subject, str], bool]


def _string_test(
    term: Term, value: StringValue, whole: bool, aliases: dict[str, str] | None = None, lowered: bool = False
) -> StringTest:
    """How a string value compares: whole (identifiers) or anywhere (text), ignoring case;
    `lowered`: the texts it is given are lower-case already (search views)."""
    if isinstance(value, Regex):
        pattern = value.compiled
        return lambda s, text: s.budget.search(pattern, text, term)
    if isinstance(value, Glob):
        simple = _simple_glob(value.pattern.lower(), lowered)
        if simple is not None:
            return simple
        glob = glob_regex(value.pattern)
        return lambda s, text: s.budget.search(glob, text, term)
    needle = value.text.lower()
    if aliases:
        needle = aliases.get(needle, needle)
    if whole:
        if lowered:
            return lambda s, text: text == needle
        return lambda s, text: text.lower() == needle
    if lowered:
        return lambda s, text: needle in text
    return lambda s, text: needle in text.lower()


def _simple_glob(pattern: str, lowered: bool) -> StringTest | None:
    """`abc*`, `*abc`, `*abc*` and `*` as plain string tests: no regex needed."""
    inner = pattern.strip("*")
    if "*" in inner:
        return None
    low: Callable[[str], str] = (lambda t: t) if lowered else str.lower
    starts, ends = pattern.startswith("*"), pattern.endswith("*")
    if not inner:
        return lambda s, text: True
    if starts and ends:
        return lambda s, text: inner in low(text)
    if ends:
        return lambda s, text: low(text).startswith(inner)
    if starts:
        return lambda s, text: low(text).endswith(inner)
    return lambda s, text: low(text) == inner


def _free_text(term: Term, value: Text | Glob | Regex) -> Predicate:
    if isinstance(value, Text):
        needle = value.text.lower()
        raw = _raw_prefilter(needle)

        def contains(s: _Subject) -> bool:
            cached = s.searcher.cached_view(s.capture)
            if cached is not None:
                return needle in cached.text
            # A string that is not in the wire bytes cannot be in the decoded text either
            # (protobuf keeps strings as UTF-8 as they are), unless a body is gzip-compressed
            # or it is an event (its originating request is base64 in the payload).
            if raw is not None and s.capture.kind == "dispatch" and not _maybe_in_bytes(s.capture, raw):
                return False
            return needle in s.view.text

        return contains
    test = _string_test(term, value, whole=False, lowered=True)
    if isinstance(value, Glob):
        # A free-word glob means "a word like this somewhere", not "the whole text".
        pattern = glob_regex(value.pattern).pattern.removeprefix("^").removesuffix("$")
        compiled = regex.compile(pattern, regex.IGNORECASE)
        return lambda s: s.budget.search(compiled, s.view.text, term)
    return lambda s: test(s, s.view.text)


def _raw_prefilter(needle: str) -> bytes | None:
    if not needle.isascii() or not needle:
        return None
    return needle.encode("ascii")


def _maybe_in_bytes(capture: Capture, raw: bytes) -> bool:
    """Whether the lower-case ASCII `raw` may be in the capture; False only when it cannot be."""
    if raw in capture.hook_type.lower().encode():
        return True  # the one summary field that is not a string on the wire
    for data in (capture.request, None if capture.reply is capture.request else capture.reply):
        # bytes.lower() (ASCII only, like the needle) is a fast copy; a case-insensitive regex is not.
        if data and (raw in data or raw in data.lower() or b"\x1f\x8b" in data):
            return True
    return any(raw in v.lower().encode() for _, v in capture.metadata if isinstance(v, str))


def _number(name: str, value: Range, searcher: Searcher) -> Predicate:
    if name == "status":
        status_of = searcher.status_of
        return lambda s: value.contains(_number_or_none(status_of(s.capture)))
    if name == "dur":
        return lambda s: value.contains(s.capture.duration_ns / 1e6)
    if name == "size":
        return lambda s: value.contains(len(s.capture.request))
    return lambda s: value.contains(s.capture.id)


def _number_or_none(value: int | str | None) -> int | None:
    return value if isinstance(value, int) else None


def _header(term: Term, value: Header) -> Predicate:
    meta = term.field == "meta"
    name_test = _string_test(term, value.name, whole=True, lowered=not meta)
    value_test = None if value.value is None else _string_test(term, value.value, whole=False, lowered=not meta)

    def test(s: _Subject) -> bool:
        pairs = metadata_view(s.capture, s.searcher.redactor) if meta else s.view.headers
        for header_name, header_value in pairs:
            if name_test(s, header_name) and (value_test is None or value_test(s, header_value)):
                return True
        return False

    return test


def _journey(term: Term, value: StringValue, searcher: Searcher) -> Predicate:
    journeys = searcher.journeys
    if journeys is None:
        raise QueryError("journey: is not available here", term.start, "another field")
    if isinstance(value, Text) and value.text.isdigit():
        target = journeys.journey_id(int(value.text))
        return lambda s: target is not None and journeys.journey_id(s.capture.id) == target
    test = _string_test(term, value, whole=True)
    # The key as shown: a redacted request id matches "[redacted]", never its value.
    redactor = searcher.redactor
    return lambda s: (key := journeys.journey_key(s.capture.id, redactor)) is not None and test(s, key)
