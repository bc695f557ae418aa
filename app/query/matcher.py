"""What a parsed query (app.query.parser) means for a capture: one predicate for the list, the
live stream, exports and routing rules, so each shows exactly the same captures.

Regexes run on RE2 (app.query.pattern): linear in the text, so their cost is bounded by the
pattern's caps and the text's size. A search that may still cost more than a moment (a large
text, a complex pattern) runs in a worker thread, where RE2 releases the interpreter lock, while a
walk over the buffer waits for it; all of one evaluation's searches share a time budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from app.capture.record import Capture
from app.formats.analysis import has_effect_of, outcome_status_of, warnings_of
from app.formats.document import snapshot
from app.formats.offload import Offloader
from app.query.loop_share import SLICE_SECONDS, LoopShare, Slices
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
    parse,
)
from app.query.pattern import Regex as CompiledRegex
from app.query.pattern import Wildcards
from app.query.search import MAX_SEARCH_BODY_BYTES, SearchView, SearchViews, build_view, metadata_view, summary_view
from app.redaction.redact import Redactor
from app.tyk.outcome import Gateway

__all__ = ["SLICE_SECONDS", "Budget", "Matcher", "QueryTooSlow", "Searcher", "compile_query"]

# All the regex searches of one evaluation (a list page, an export) may take this long together.
REGEX_BUDGET_SECONDS = 2.0
# A search whose worst case (program size x text length) is above this runs in a worker thread
# when a walk can wait for it: about a millisecond at RE2's slowest per byte and instruction.
INLINE_SEARCH_COST = 200_000
# A capture this large has its search view built in a worker thread when a walk needs it:
# decoding and lower-casing tens of megabytes on the loop would stall the gateway's calls.
THREAD_VIEW_BYTES = 256 * 1024
RULE_TEXT_CHARS = 64 * 1024
"""A routing rule matches each text (path, header value, body) on this many first characters: it
runs inline on the gateway's call, so its cost is bounded by construction, whatever the message's
size (RE2 is linear: about a millisecond for the longest such text). Queries look at the whole text."""
# Search results kept for a walk's next look at the same capture (after a search in a thread).
MAX_REMEMBERED_SEARCHES = 4096

HOOK_ALIASES = {"auth": "customkeycheck", "postauth": "postkeyauth"}
# Fields a routing rule can use: what is known about a call before it is answered.
REQUEST_FIELDS = frozenset({"kind", "hook", "name", "api", "org", "method", "path", "h", "meta", "body", "size", "peer",
                            "status"})  # fmt: skip


class QueryTooSlow(QueryError):
    """The query's regex searches went over their time budget; the query is refused rather than left running."""


SearchKey = tuple[int, int, int, int]


@dataclass
class Budget:
    """Regex time left for one evaluation, and the results of searches already run in a thread."""

    seconds: float = REGEX_BUDGET_SECONDS
    spent: float = 0.0
    found: dict[SearchKey, bool] = field(default_factory=dict)

    def check(self, term: Term) -> None:
        if self.spent >= self.seconds:
            raise QueryTooSlow(
                f"the pattern took too long (limit {self.seconds:.0f} s of matching per query)",
                term.start,
                "a simpler pattern or a narrower query (e.g. add hook: or api:)",
            )

    def search(self, pattern: CompiledRegex, text: str, term: Term) -> bool:
        """Search on the loop (a search small enough, or a single capture outside a walk)."""
        self.check(term)
        began = time.perf_counter()
        try:
            return pattern.search(text[:MAX_SEARCH_BODY_BYTES])
        finally:
            self.spent += time.perf_counter() - began

    async def search_in_thread(self, need: _SearchNeeded, share: LoopShare | None) -> None:
        """Run a costly search in a worker thread (RE2 releases the interpreter lock) and remember it."""
        self.check(need.term)
        text = need.text[:MAX_SEARCH_BODY_BYTES]
        if share is None:
            found = await self._timed(need.pattern, text)
        else:
            async with share.worker():
                found = await self._timed(need.pattern, text)
        if len(self.found) >= MAX_REMEMBERED_SEARCHES:
            self.found.clear()
        self.found[need.key] = found

    async def _timed(self, pattern: CompiledRegex, text: str) -> bool:
        began = time.perf_counter()
        try:
            return await asyncio.to_thread(pattern.search, text)
        finally:
            self.spent += time.perf_counter() - began


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
    share: LoopShare | None = None
    """The loop time all user-driven work shares (None: a plain turn every slice)."""
    offloader: Offloader | None = None
    """Where a large capture's view is built (None: a worker thread)."""

    def view(self, capture: Capture) -> SearchView:
        return self.views.get(capture) if self.views is not None else build_view(capture, self.redactor)

    def cached_view(self, capture: Capture) -> SearchView | None:
        return self.views.cached(capture) if self.views is not None else None

    async def view_in_thread(self, capture: Capture) -> SearchView:
        """The view built in a worker thread from a snapshot, then kept in the cache (on the loop).

        A large capture's view is built in a worker process: a thread would hold the interpreter
        lock the gateway's calls need for as long as its parse takes.
        """
        async with self.share.worker() if self.share is not None else contextlib.nullcontext():
            if capture.large and self.offloader is not None:
                view = await self.offloader.in_process(build_view, snapshot(capture), self.redactor)
            else:
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


class _SearchNeeded(Exception):
    """A term needs a costly regex search: the walk runs it in a thread, then looks at the capture again."""

    def __init__(self, pattern: CompiledRegex, text: str, term: Term, key: SearchKey) -> None:
        super().__init__()
        self.pattern = pattern
        self.text = text
        self.term = term
        self.key = key


class _Subject:
    """One capture being matched; its search view is built only if a term needs it.

    `defer`: in a walk that can wait, a large view or a costly search is not done on the loop:
    _ViewNeeded or _SearchNeeded says what to do in a thread before looking again.
    """

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
            elif self.searcher.request_only and self.capture.large:
                # A rule runs on the call path: a large message is never parsed there, so a rule's
                # header and body terms see nothing of it (docs/proxy.md).
                self._view = summary_view(self.capture, self.searcher.redactor)
            else:
                self._view = self.searcher.view(self.capture)
        return self._view

    def search(self, pattern: CompiledRegex, text: str, term: Term) -> bool:
        if len(text) * pattern.program_size <= INLINE_SEARCH_COST:
            return self.budget.search(pattern, text, term)
        # Hashing a str is done once (Python keeps it), and the key holds no reference to the text.
        key = (self.capture.id, id(pattern), len(text), hash(text))
        found = self.budget.found.get(key)
        if found is not None:
            return found
        if self.defer:
            raise _SearchNeeded(pattern, text, term, key)
        return self.budget.search(pattern, text, term)


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

    async def view_for(self, capture: Capture, budget: Budget, slices: Slices | None = None) -> SearchView | None:
        """Prepare `matches` for one capture without stalling the loop: a large capture's view is
        built, and costly regex searches are run (their results kept in `budget`), in worker threads.

        Pass the view (and the budget) to `matches` so the check on the loop does neither again.
        """
        if self._predicate is None:
            return None
        view = None
        while True:
            try:
                self._predicate(_Subject(capture, self.searcher, budget, view, defer=True))
                return view
            except _ViewNeeded:
                if slices is not None:
                    slices.pay()  # waiting for the thread is not loop time
                view = await self.searcher.view_in_thread(capture)
            except _SearchNeeded as need:
                if slices is not None:
                    slices.pay()
                await budget.search_in_thread(need, self.searcher.share)
            if slices is not None:
                await slices.resume()

    @property
    def needs_journeys(self) -> bool:
        return any(t.field == "journey" for t in self.query.terms())

    @property
    def everything(self) -> bool:
        return self._predicate is None

    async def filter(self, captures: Iterable[Capture], budget: Budget | None = None) -> AsyncGenerator[Capture, None]:
        """The matching captures, the walk paying for its slices of the loop from the shared budget."""
        budget = budget or Budget()
        slices = Slices(self.searcher.share)
        await slices.start()
        try:
            for capture in captures:
                if self._predicate is None or await self._matches_off_loop(capture, budget, slices):
                    yield capture
                await slices.tick()
        finally:
            slices.close()

    async def _matches_off_loop(self, capture: Capture, budget: Budget, slices: Slices) -> bool:
        assert self._predicate is not None
        view = None
        while True:
            try:
                return self._predicate(_Subject(capture, self.searcher, budget, view, defer=True))
            except _ViewNeeded:
                slices.pay()  # waiting for the thread is not loop time
                view = await self.searcher.view_in_thread(capture)
            except _SearchNeeded as need:
                slices.pay()
                await budget.search_in_thread(need, self.searcher.share)
            await slices.resume()


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
    `lowered`: the texts it is given are lower-case already (search views).

    A routing rule runs on the call path, so it looks at the first RULE_TEXT_CHARS of each text only.
    """
    test = _unbounded_string_test(term, value, whole, aliases, lowered)

    def bounded(s: _Subject, text: str) -> bool:
        return test(s, text[:RULE_TEXT_CHARS] if s.searcher.request_only else text)

    return bounded


def _unbounded_string_test(
    term: Term, value: StringValue, whole: bool, aliases: dict[str, str] | None, lowered: bool
) -> StringTest:
    if isinstance(value, Regex):
        pattern = value.compiled
        return lambda s, text: s.search(pattern, text, term)
    if isinstance(value, Glob):
        simple = _simple_glob(value.pattern.lower(), lowered)
        if simple is not None:
            return simple
        wildcards = Wildcards.of(value.pattern)
        if lowered:
            return lambda s, text: wildcards.whole(text)
        return lambda s, text: wildcards.whole(text.lower())
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
        # A free-word glob means "a word like this somewhere" (on one line), not "the whole text".
        wildcards = Wildcards.of(value.pattern)
        return lambda s: wildcards.within_a_line(s.view.text)
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
