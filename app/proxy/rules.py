"""Routing rules: which plugin server (or mock, or echo) answers each call.

A rules file (YAML or JSON, see docs/proxy.md) is validated as a whole when loaded: a
bad file is refused with every problem named, and a running inspector keeps its
previous rules.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from app.capture.matcher import REQUEST_FIELDS, Matcher, Searcher, compile_query
from app.capture.query import QueryError
from app.capture.record import Capture
from app.proxy.faults import Fault, parse_fault
from app.proxy.mock import validate_mock

OnError = Literal["pass", "echo"]
RULE_KEYS = frozenset(
    {"name", "match", "upstream", "mock", "action", "on_error", "deadline_seconds", "fault", "shadow"}
)
MATCH_FIELDS = ("api_id", "org_id", "hook_type", "hook_name", "method", "path_prefix", "query")
MOCK_FIELDS = (
    "set_headers", "delete_headers", "add_params", "delete_params", "extended_params",
    "return_overrides", "session", "metadata",
)  # fmt: skip


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

    def matches(self, capture: Capture) -> bool:
        return (
            (self.api_id is None or capture.api_id == self.api_id)
            and (self.org_id is None or capture.org_id == self.org_id)
            and (self.hook_type is None or capture.hook_type.lower() == self.hook_type.lower())
            and (self.hook_name is None or capture.hook_name == self.hook_name)
            and (self.method is None or capture.method.upper() == self.method.upper())
            and (self.path_prefix is None or capture.path.startswith(self.path_prefix))
            and (self.query is None or self.query.matches(capture))
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
class Rules:
    rules: tuple[Rule, ...] = ()
    default: Rule = ECHO

    def route(self, capture: Capture) -> Rule:
        """The first rule that matches, else the default."""
        for rule in self.rules:
            if rule.match.matches(capture):
                return rule
        return self.default

    @property
    def upstreams(self) -> set[str]:
        return {r.upstream for r in (*self.rules, self.default) if r.upstream}


def proxy_all(upstream: str) -> Rules:
    """`--upstream HOST:PORT` alone: every call goes there, errors pass through."""
    return Rules(default=Rule(name="upstream", upstream=upstream))


def load_rules(path: str | Path, fallback_upstream: str | None = None) -> Rules:
    """Read and validate a rules file; raise RulesError naming every problem."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise RulesError(f"cannot read rules file {path}: {exc.strerror}") from None
    try:
        doc = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise RulesError(f"{path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from None
    return parse_rules(doc, fallback_upstream, source=str(path))


def parse_rules(doc: Any, fallback_upstream: str | None = None, source: str = "rules") -> Rules:
    problems: list[str] = []
    if not isinstance(doc, dict):
        raise RulesError(f"{source}: expected a mapping with 'rules' (and optionally 'upstreams', 'default')")
    unknown = set(doc) - {"upstreams", "rules", "default", "on_error", "deadline_seconds"}
    if unknown:
        problems.append(f"unknown top-level keys: {', '.join(sorted(unknown))}")
    upstreams = doc.get("upstreams") or {}
    if not isinstance(upstreams, dict) or not all(isinstance(v, str) and v for v in upstreams.values()):
        problems.append("'upstreams' must map names to HOST:PORT strings")
        upstreams = {}
    on_error = doc.get("on_error", "pass")
    deadline = _deadline(doc.get("deadline_seconds"), "top level", problems)
    defaults = {"on_error": on_error, "deadline_seconds": deadline}

    rules = []
    raw_rules = doc.get("rules") or []
    if not isinstance(raw_rules, list):
        problems.append("'rules' must be a list")
        raw_rules = []
    for index, raw in enumerate(raw_rules):
        rule = _rule(raw, f"rule #{index + 1}", upstreams, defaults, problems)
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
        _check_target(default.upstream or "", "default", problems)
    else:
        problems.append("'default' must be 'echo', an upstream name or HOST:PORT")
        default = ECHO
    if on_error not in ("pass", "echo"):
        problems.append(f"'on_error' must be 'pass' or 'echo', not {on_error!r}")
    if problems:
        raise RulesError(f"{source}: " + "; ".join(problems))
    return Rules(rules=tuple(rules), default=default)


def _rule(
    raw: Any, where: str, upstreams: dict[str, str], defaults: dict[str, Any], problems: list[str]
) -> Rule | None:
    if not isinstance(raw, dict):
        problems.append(f"{where} must be a mapping")
        return None
    name = str(raw.get("name") or where)
    where = f"{where} ({name})" if raw.get("name") else where
    unknown = set(raw) - RULE_KEYS
    if unknown:
        problems.append(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    match_raw = raw.get("match") or {}
    if not isinstance(match_raw, dict) or set(match_raw) - set(MATCH_FIELDS):
        problems.append(f"{where}: 'match' takes {', '.join(MATCH_FIELDS)}")
        match_raw = {}
    query = None
    if "query" in match_raw:
        try:
            query = rule_query(str(match_raw["query"]))
        except QueryError as exc:
            problems.append(f"{where}: match.query: {exc}")
    match = Match(**{k: str(v) for k, v in match_raw.items() if k != "query"}, query=query)
    actions = [key for key in ("upstream", "mock", "action") if key in raw]
    fault = parse_fault(raw["fault"], where, problems) if "fault" in raw else None
    if fault is not None and not actions:
        actions = ["action"]  # a fault alone faults the echo
        raw = {**raw, "action": "echo"}
    if len(actions) != 1:
        problems.append(f"{where}: give exactly one of 'upstream', 'mock' or 'action: echo'")
        return None
    upstream = None
    mock = None
    if "upstream" in raw:
        upstream = upstreams.get(str(raw["upstream"]), str(raw["upstream"]))
        _check_target(upstream, where, problems)
    elif "mock" in raw:
        mock = raw["mock"] or {}
        if not isinstance(mock, dict) or set(mock) - set(MOCK_FIELDS):
            problems.append(f"{where}: 'mock' takes {', '.join(MOCK_FIELDS)}")
            mock = {}
        elif (problem := validate_mock(mock)) is not None:
            problems.append(f"{where}: mock cannot be applied: {problem}")
    elif raw["action"] != "echo":
        problems.append(f"{where}: 'action' can only be 'echo'")
    on_error = raw.get("on_error", defaults["on_error"])
    if on_error not in ("pass", "echo"):
        problems.append(f"{where}: 'on_error' must be 'pass' or 'echo'")
    deadline = _deadline(raw.get("deadline_seconds", defaults["deadline_seconds"]), where, problems)
    shadow = None
    if "shadow" in raw:
        shadow = upstreams.get(str(raw["shadow"]), str(raw["shadow"]))
        _check_target(shadow, f"{where}: shadow", problems)
    return Rule(
        name=name, match=match, upstream=upstream, mock=mock, on_error=on_error, deadline_seconds=deadline,
        fault=fault, shadow=shadow,
    )  # fmt: skip


# Rules see the call as the gateway sent it: real values (nothing to redact for a routing
# decision) and the status the Response hook carries.
RULE_SEARCHER = Searcher(request_only=True)


def rule_query(text: str) -> Matcher:
    """A rule's `match.query`, limited to what is known before the call is answered."""
    return compile_query(text, RULE_SEARCHER, fields=REQUEST_FIELDS)


def _deadline(value: Any, where: str, problems: list[str]) -> float | None:
    """A positive number of seconds, or None (no deadline of the proxy's own: the gateway's is passed on)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
        problems.append(f"{where}: 'deadline_seconds' must be a positive number of seconds (or left out: none)")
        return None
    return float(value)


def _check_target(target: str, where: str, problems: list[str]) -> None:
    bare = target.removeprefix("tcp://")
    if not (bare.startswith("unix:") or (":" in bare and bare.rsplit(":", 1)[1].isdigit())):
        problems.append(f"{where}: upstream {target!r} is neither a known name nor HOST:PORT")
