"""Routing rules: which plugin server (or mock, or echo) answers each call.

A rules file (YAML or JSON, see docs/proxy.md) is validated as a whole when loaded: a
bad file is refused with every problem named (with its line, and the likely intended word
for a typo), and a running inspector keeps its previous rules.

Routing never fails a call: a rule whose match raises or takes longer than its share of
the call's time hands the call to the default, and the routing says why (`Routing.error`).
"""

from __future__ import annotations

import difflib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from app.capture.record import Capture
from app.proxy.faults import Fault, parse_fault
from app.proxy.mock import validate_mock
from app.query.matcher import REQUEST_FIELDS, Budget, Matcher, Searcher, compile_query
from app.query.parser import QueryError
from app.tyk.protocol import HOOK_TYPE_NAMES

OnError = Literal["pass", "echo"]
MATCH_FIELDS = ("api_id", "org_id", "hook_type", "hook_name", "method", "path_prefix", "query")
MOCK_FIELDS = (
    "set_headers", "delete_headers", "add_params", "delete_params", "extended_params",
    "return_overrides", "session", "metadata",
)  # fmt: skip
TOP_LEVEL_KEYS = ("upstreams", "rules", "default", "on_error", "deadline_seconds")
ACTION_KEYS = ("upstream", "mock", "action")
"""A rule gives exactly one of these: what answers the calls it matches."""
RULE_KEYS = ("name", "match", *ACTION_KEYS, "on_error", "deadline_seconds", "fault", "shadow")
# What `hook_type` can be: a hook (Dispatch) or a Tyk event type (DispatchEvent; gateway/event_system.go).
HOOK_TYPES = tuple(name for name in HOOK_TYPE_NAMES.values() if name != "Unknown")
EVENT_TYPES = (
    "QuotaExceeded", "RatelimitExceeded", "AuthFailure", "KeyExpired", "VersionFailure", "OrgQuotaExceeded",
    "OrgRateLimitExceeded", "TriggerExceeded", "BreakerTriggered", "BreakerTripped", "BreakerReset", "HostDown",
    "HostUp", "TokenCreated", "TokenUpdated", "TokenDeleted", "CertificateExpiringSoon", "CertificateExpired",
    "UpstreamOAuthError", "OAuth2ScopeCheckFailed", "OAuth2ExchangeSucceeded", "OAuth2ExchangeFailed",
    "RateLimitSmoothingUp", "RateLimitSmoothingDown",
)  # fmt: skip
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
# All the rules of one call together may take this long (CPU time) to decide; past it the default
# answers. A bound of its own, however the matching engine behaves: the gateway is waiting.
ROUTE_SECONDS = 0.1
WALL_FACTOR = 10
"""On a machine too busy to give the loop its CPU, routing may take this many times ROUTE_SECONDS of wall time."""


class RulesError(ValueError):
    """The rules file is invalid; the message lists every problem."""


@dataclass(frozen=True, slots=True)
class Match:
    api_id: str | None = None
    org_id: str | None = None
    hook_type: str | None = None
    hook_name: str | None = None
    method: str | None = None
    path_prefix: str | None = None
    query: Matcher | None = None
    """A filter query (docs/filters.md) over what is known before the call is answered."""

    def matches(self, capture: Capture, seconds: float | None = None) -> bool:
        """Whether the call matches; `seconds`: the time its query may spend (raises QueryError past it)."""
        return (
            (self.api_id is None or capture.api_id == self.api_id)
            and (self.org_id is None or capture.org_id == self.org_id)
            and (self.hook_type is None or capture.hook_type.lower() == self.hook_type.lower())
            and (self.hook_name is None or capture.hook_name == self.hook_name)
            and (self.method is None or capture.method.upper() == self.method.upper())
            and (self.path_prefix is None or capture.path.startswith(self.path_prefix))
            and (self.query is None or self.query.matches(capture, None if seconds is None else Budget(seconds)))
        )


@dataclass(frozen=True, slots=True)
class Rule:
    """What answers the calls a rule matches: an upstream plugin server, a mock, or an echo."""

    name: str
    match: Match = field(default_factory=Match)
    upstream: str | None = None
    mock: Mapping[str, Any] | None = None
    on_error: OnError = "pass"
    deadline_seconds: float | None = None
    """A deadline of the proxy's own on each upstream call; None: the gateway's (it sets none), passed on."""
    fault: Fault | None = None
    """Faults injected into the calls this rule answers (app.proxy.faults)."""
    shadow: str | None = None
    """A plugin server (HOST:PORT) that also gets these calls once the gateway has its answer (app.proxy.shadow)."""

    @property
    def action(self) -> Literal["upstream", "mock", "echo"]:
        if self.upstream:
            return "upstream"
        return "mock" if self.mock is not None else "echo"


ECHO = Rule(name="echo")


@dataclass(frozen=True, slots=True)
class Routing:
    """The rule that answers a call, and why the rules could not decide when they could not."""

    rule: Rule
    error: str | None = None
    """Set when a rule's match failed or the rules ran out of time: `rule` is then the default."""


@dataclass(frozen=True, slots=True)
class Rules:
    rules: tuple[Rule, ...] = ()
    default: Rule = ECHO
    route_seconds: float = ROUTE_SECONDS
    """How long all the rules of one call may take to decide before the default answers."""

    def route(self, capture: Capture) -> Rule:
        """The first rule that matches, else the default."""
        return self.select(capture).rule

    def select(self, capture: Capture) -> Routing:
        """The first rule that matches, else the default; never raises.

        A match that fails (an error, its regex time spent) or rules that take longer than
        `route_seconds` together leave the call to the default, with the reason.
        """
        # Counted in CPU time of this thread (the loop's): what the matching costs the gateway's other
        # calls, not what a busy machine adds to it (which would make routing flaky). Wall time has a
        # looser bound of its own, so the gateway never waits long either way.
        deadline = time.thread_time() + self.route_seconds
        wall_deadline = time.perf_counter() + WALL_FACTOR * self.route_seconds
        for index, rule in enumerate(self.rules):
            left = min(deadline - time.thread_time(), wall_deadline - time.perf_counter())
            try:
                if left <= 0:
                    raise TimeoutError
                if rule.match.matches(capture, left):
                    return Routing(rule)
            except TimeoutError:
                spent = f"{self.route_seconds * 1000:g} ms"
                return Routing(self.default, self._failed(f"rules from #{index + 1} ({rule.name}) on were not tried: "
                                                          f"the rules took longer than {spent} to decide"))  # fmt: skip
            except Exception as exc:  # whatever a match does, the call is answered
                reason = f"rule #{index + 1} ({rule.name}) could not be matched: {type(exc).__name__}: {exc}"
                return Routing(self.default, self._failed(reason))
        return Routing(self.default)

    def _failed(self, reason: str) -> str:
        return f"the default ({_name_of(self.default)}) answered: {reason}"

    @property
    def upstreams(self) -> set[str]:
        return {r.upstream for r in (*self.rules, self.default) if r.upstream}


def proxy_all(upstream: str) -> Rules:
    """`--upstream HOST:PORT` alone: every call goes there, errors pass through."""
    return Rules(default=Rule(name="upstream", upstream=upstream))


def load_rules(path: str | Path, fallback_upstream: str | None = None) -> Rules:
    """Read and validate a rules file; raise RulesError naming every problem, with its line."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RulesError(f"cannot read rules file {path}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise RulesError(
            f"{path} line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}): "
            "save the file as UTF-8"
        ) from None
    language = "JSON" if path.suffix == ".json" else "YAML"
    try:
        doc = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise RulesError(f"{path} is not valid {language}: {exc}") from None
    return parse_rules(doc, fallback_upstream, source=str(path), lines=_Lines.of(text))


class _Lines:
    """Where each key and item of a rules file is written, to name the line of a problem.

    JSON is (nearly always) YAML too, so one composer serves both; a file it cannot read
    gives no line numbers, only the problems.
    """

    def __init__(self, root: yaml.Node | None) -> None:
        self._root = root

    @classmethod
    def of(cls, text: str) -> _Lines:
        try:
            return cls(yaml.compose(text, Loader=yaml.SafeLoader))
        except yaml.YAMLError:
            return cls(None)

    def line(self, path: tuple[str | int, ...]) -> int | None:
        """The 1-based line of the deepest node along `path` (a key names its key's line)."""
        node, line = self._root, None
        for step in path:
            if isinstance(node, yaml.MappingNode) and isinstance(step, str):
                for key, value in node.value:
                    if isinstance(key, yaml.ScalarNode) and key.value == step:
                        node, line = value, key.start_mark.line + 1
                        break
                else:
                    return line
            elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
                node = node.value[step]
                line = node.start_mark.line + 1
            else:
                return line
        return line if line is not None or node is None else node.start_mark.line + 1


class _Problems:
    """Every problem of a rules file, each with where it is (line, rule) and what to write instead."""

    def __init__(self, lines: _Lines | None) -> None:
        self._lines = lines or _Lines(None)
        self.found: list[str] = []

    def add(self, path: tuple[str | int, ...], where: str | None, message: str) -> None:
        line = self._lines.line(path) if path else None
        prefix = " ".join(filter(None, [f"line {line}:" if line else None, f"{where}:" if where else None]))
        self.found.append(f"{prefix} {message}" if prefix else message)

    def unknown_keys(self, path: tuple[str | int, ...], where: str | None, keys: Any, known: tuple[str, ...]) -> None:
        for key in sorted(set(keys) - set(known), key=str):
            self.add((*path, str(key)), where, f"unknown key {str(key)!r}{_suggest(str(key), known)}"
                     f" (known: {', '.join(known)})")  # fmt: skip


def _suggest(word: str, known: tuple[str, ...] | list[str]) -> str:
    """`, did you mean 'X'?` when a known word is close to `word` (case aside), else nothing."""
    lowered = {k.lower(): k for k in known}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return f": did you mean {lowered[close[0]]!r}?" if close else ""


def parse_rules(
    doc: Any, fallback_upstream: str | None = None, source: str = "rules", lines: _Lines | None = None
) -> Rules:
    problems = _Problems(lines)
    if not isinstance(doc, dict):
        raise RulesError(f"{source}: expected a mapping with 'rules' (and optionally 'upstreams', 'default')")
    problems.unknown_keys((), "top level", doc, TOP_LEVEL_KEYS)
    upstreams = doc.get("upstreams") or {}
    if not isinstance(upstreams, dict) or not all(isinstance(v, str) and v for v in upstreams.values()):
        problems.add(("upstreams",), None, "'upstreams' must map names to HOST:PORT strings")
        upstreams = {}
    on_error = doc.get("on_error", "pass")
    deadline = _deadline(doc.get("deadline_seconds"), ("deadline_seconds",), "top level", problems)
    defaults = {"on_error": on_error, "deadline_seconds": deadline}

    rules = []
    raw_rules = doc.get("rules") or []
    if not isinstance(raw_rules, list):
        problems.add(("rules",), None, "'rules' must be a list")
        raw_rules = []
    for index, raw in enumerate(raw_rules):
        rule = _rule(raw, ("rules", index), f"rule #{index + 1}", upstreams, defaults, problems)
        if rule is not None:
            rules.append(rule)

    default_spec = doc.get("default", fallback_upstream or "echo")
    if default_spec == "echo":
        default = Rule(name="default", on_error=on_error, deadline_seconds=deadline)
    elif isinstance(default_spec, str):
        default = Rule(
            name="default", upstream=upstreams.get(default_spec, default_spec), on_error=on_error,
            deadline_seconds=deadline,
        )  # fmt: skip
        _check_target(default.upstream or "", ("default",), "default", problems, upstreams)
    else:
        problems.add(("default",), None, "'default' must be 'echo', an upstream name or HOST:PORT")
        default = ECHO
    if on_error not in ("pass", "echo"):
        problems.add(("on_error",), None, f"'on_error' must be 'pass' or 'echo', not {on_error!r}")
    if problems.found:
        raise RulesError(f"{source}: " + "; ".join(problems.found))
    return Rules(rules=tuple(rules), default=default)


def _rule(
    raw: Any,
    path: tuple[str | int, ...],
    where: str,
    upstreams: dict[str, str],
    defaults: dict[str, Any],
    problems: _Problems,
) -> Rule | None:
    if not isinstance(raw, dict):
        problems.add(path, where, "must be a mapping")
        return None
    name = str(raw.get("name") or where)
    where = f"{where} ({name})" if raw.get("name") else where
    problems.unknown_keys(path, where, raw, RULE_KEYS)
    match = _match(raw.get("match") or {}, (*path, "match"), where, problems)
    actions = [key for key in ACTION_KEYS if key in raw]
    fault = None
    if "fault" in raw:
        fault_problems: list[str] = []
        fault = parse_fault(raw["fault"], where, fault_problems)
        for found in fault_problems:
            problems.add((*path, "fault"), None, found)
        if not actions:
            actions = ["action"]  # a fault alone faults the echo
            raw = {**raw, "action": "echo"}
    if len(actions) != 1:
        problems.add(path, where, "give exactly one of 'upstream', 'mock' or 'action: echo'")
        return None
    upstream = None
    mock = None
    if "upstream" in raw:
        upstream = upstreams.get(str(raw["upstream"]), str(raw["upstream"]))
        _check_target(upstream, (*path, "upstream"), where, problems, upstreams)
    elif "mock" in raw:
        mock = raw["mock"] or {}
        if not isinstance(mock, dict):
            problems.add((*path, "mock"), where, f"'mock' takes {', '.join(MOCK_FIELDS)}")
            mock = {}
        elif set(mock) - set(MOCK_FIELDS):
            problems.unknown_keys((*path, "mock"), f"{where}: mock", mock, MOCK_FIELDS)
            mock = {}
        elif (problem := validate_mock(mock)) is not None:
            problems.add((*path, "mock"), where, f"mock cannot be applied: {problem}")
    elif raw["action"] != "echo":
        problems.add((*path, "action"), where, "'action' can only be 'echo'")
    on_error = raw.get("on_error", defaults["on_error"])
    if on_error not in ("pass", "echo"):
        problems.add((*path, "on_error"), where, "'on_error' must be 'pass' or 'echo'")
    deadline = _deadline(
        raw.get("deadline_seconds", defaults["deadline_seconds"]), (*path, "deadline_seconds"), where, problems
    )
    shadow = None
    if "shadow" in raw:
        shadow = upstreams.get(str(raw["shadow"]), str(raw["shadow"]))
        _check_target(shadow, (*path, "shadow"), f"{where}: shadow", problems, upstreams)
    return Rule(
        name=name, match=match, upstream=upstream, mock=mock, on_error=on_error, deadline_seconds=deadline,
        fault=fault, shadow=shadow,
    )  # fmt: skip


def _match(raw: Any, path: tuple[str | int, ...], where: str, problems: _Problems) -> Match:
    """A rule's `match`; a value no call can have (a misspelt hook type, a path without /) is a problem."""
    if not isinstance(raw, dict):
        problems.add(path, where, f"'match' takes {', '.join(MATCH_FIELDS)}")
        return Match()
    if set(raw) - set(MATCH_FIELDS):
        problems.unknown_keys(path, f"{where}: match", raw, MATCH_FIELDS)
    raw = {k: v for k, v in raw.items() if k in MATCH_FIELDS}
    query = None
    if "query" in raw:
        try:
            query = rule_query(str(raw["query"]))
        except QueryError as exc:
            problems.add((*path, "query"), where, f"match.query: {exc}")
    values = {k: str(v) for k, v in raw.items() if k != "query" and v is not None}
    hook_type = values.get("hook_type")
    known_types = (*HOOK_TYPES, *EVENT_TYPES)
    if hook_type is not None and hook_type.lower() not in {t.lower() for t in known_types}:
        problems.add((*path, "hook_type"), where, f"match.hook_type {hook_type!r} is no hook or event type, so the "
                     f"rule would never match{_suggest(hook_type, known_types)} (hooks: {', '.join(HOOK_TYPES)}; "
                     "events: AuthFailure, QuotaExceeded, ...)")  # fmt: skip
    method = values.get("method")
    if method is not None and method.upper() not in HTTP_METHODS and (hint := _suggest(method, HTTP_METHODS)):
        problems.add((*path, "method"), where, f"match.method {method!r} is not an HTTP method{hint}")
    prefix = values.get("path_prefix")
    if prefix is not None and not prefix.startswith("/"):
        problems.add((*path, "path_prefix"), where, f"match.path_prefix {prefix!r} would never match (request "
                     f"paths start with /): did you mean {'/' + prefix!r}?")  # fmt: skip
    return Match(**values, query=query)


# Rules see the call as the gateway sent it: real values (nothing to redact for a routing
# decision) and the status the Response hook carries.
RULE_SEARCHER = Searcher(request_only=True)


def rule_query(text: str) -> Matcher:
    """A rule's `match.query`, limited to what is known before the call is answered."""
    return compile_query(text, RULE_SEARCHER, fields=REQUEST_FIELDS)


def _deadline(value: Any, path: tuple[str | int, ...], where: str, problems: _Problems) -> float | None:
    """A positive number of seconds, or None (no deadline of the proxy's own: the gateway's is passed on)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
        problems.add(path, where, "'deadline_seconds' must be a positive number of seconds (or left out: none)")
        return None
    return float(value)


def _check_target(
    target: str, path: tuple[str | int, ...], where: str, problems: _Problems, upstreams: Mapping[str, str]
) -> None:
    bare = target.removeprefix("tcp://")
    if not (bare.startswith("unix:") or (":" in bare and bare.rsplit(":", 1)[1].isdigit())):
        hint = _suggest(target, list(upstreams)) if upstreams else ""
        problems.add(path, where, f"upstream {target!r} is neither a known name nor HOST:PORT{hint}")


def _name_of(rule: Rule) -> str:
    return rule.upstream or rule.action
