"""User-written patterns with a cost bounded by construction: /regexes/ on RE2, `*` globs by a linear matcher.

Python's `re` (and the `regex` module) backtrack: one /((a{255}){255}){255}/ took the process to
4.3 GB and the event loop for 11 s. RE2 matches in time linear in the text, compiles within a
memory cap (`max_mem`) and releases the interpreter lock while it matches. What is left to bound
is the size of the program a pattern compiles to (the work per byte of text), so the pattern's
length, every counted repetition and the compiled program are capped here, and the constructs
RE2 cannot do (backreferences, look-around, fuzzy matching, ...) are refused by name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import re2

MAX_PATTERN_LENGTH = 256
MAX_REPEAT = 100
"""The largest count in `{n}`, `{n,m}` or `{n,}` (RE2 itself refuses nested counts above 1000 in all)."""
MAX_PROGRAM_SIZE = 2000
"""RE2 instructions a pattern may compile to: the worst-case work per byte of text grows with it."""
MAX_MEM = 4 * 1024 * 1024
"""RE2's memory for one compiled pattern (program and DFA cache together)."""


class PatternError(ValueError):
    """A pattern refused: what is wrong, where (offset in the pattern) and what to write instead."""

    def __init__(self, message: str, offset: int, expected: str) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.expected = expected


def _options() -> Any:
    options = re2.Options()
    options.max_mem = MAX_MEM
    options.case_sensitive = False
    options.log_errors = False  # errors are reported to the user, not printed to stderr
    options.never_capture = True  # a yes/no answer needs no groups: the DFA alone answers
    return options


@dataclass(frozen=True, eq=False)
class Regex:
    """A compiled /regex/: case-insensitive, searched anywhere in a text."""

    pattern: str
    program_size: int
    _compiled: Any

    def search(self, text: str) -> bool:
        return self._compiled.search(text) is not None

    def cost(self, text: str) -> int:
        """An upper bound of the work a search of `text` may take, in instruction-bytes."""
        return self.program_size * len(text)


_UNSUPPORTED_GROUPS = (
    ("(?=", "look-ahead (?=…)"),
    ("(?!", "negative look-ahead (?!…)"),
    ("(?<=", "look-behind (?<=…)"),
    ("(?<!", "negative look-behind (?<!…)"),
    ("(?>", "atomic group (?>…)"),
    ("(?P=", "named backreference (?P=…)"),
    ("(?P>", "recursion (?P>…)"),
    ("(?(", "conditional (?(…)…)"),
    ("(?|", "branch reset (?|…)"),
    ("(?R", "recursion (?R)"),
    ("(?&", "recursion (?&…)"),
    ("(?#", "comment (?#…)"),
)
_UNSUPPORTED_ESCAPES = {
    "g": r"backreference \g<…>",
    "k": r"named backreference \k<…>",
    "G": r"\G (end of the previous match)",
    "Z": r"\Z (use \z or $)",
    "X": r"\X (grapheme cluster)",
    "K": r"\K (keep out)",
    "L": r"\L (named list)",
}
_RECURSION = re.compile(r"\(\?[+-]?\d")
_FUZZY = "eisd"
_HINT = "a regular expression without it (RE2 syntax: docs/filters.md)"


def _check_syntax(pattern: str) -> None:
    """Name the first construct RE2 cannot do, and refuse counted repetitions above MAX_REPEAT.

    RE2 would refuse most of these with a terse message, and some (a fuzzy `{e<=1}`) it would
    quietly take as literal text: the user asked for something else than what would run.
    """
    i, n = 0, len(pattern)
    quantified = False  # the previous token was a quantifier (a `+` after it is possessive)
    while i < n:
        char = pattern[i]
        if char == "\\":
            nxt = pattern[i + 1] if i + 1 < n else ""
            if nxt.isdigit() and nxt != "0":
                raise PatternError(f"backreference \\{nxt} is not supported", i, _HINT)
            if nxt in _UNSUPPORTED_ESCAPES:
                raise PatternError(f"{_UNSUPPORTED_ESCAPES[nxt]} is not supported", i, _HINT)
            i += 2
            quantified = False
            continue
        if char == "[":
            i = _class_end(pattern, i)
            quantified = False
            continue
        if char == "(":
            for prefix, name in _UNSUPPORTED_GROUPS:
                if pattern.startswith(prefix, i):
                    raise PatternError(f"{name} is not supported", i, _HINT)
            if _RECURSION.match(pattern, i):
                raise PatternError("recursion (?1) is not supported", i, _HINT)
            i += 1
            quantified = False
            continue
        if char == "{":
            i, quantified = _braces(pattern, i)
            continue
        if char in "*+?":
            if quantified and char == "+":
                raise PatternError("possessive quantifier (…+) is not supported", i, _HINT)
            # `*?`, `+?`, `??` are lazy forms: the `?` ends the quantifier
            quantified = not (quantified and char == "?")
            i += 1
            continue
        quantified = False
        i += 1


def _class_end(pattern: str, start: int) -> int:
    """The index after the character class starting at `start` (RE2 reports an unclosed one)."""
    i = start + 1
    if i < len(pattern) and pattern[i] == "^":
        i += 1
    if i < len(pattern) and pattern[i] == "]":
        i += 1
    while i < len(pattern):
        if pattern[i] == "\\":
            i += 2
        elif pattern.startswith("[:", i):
            close = pattern.find(":]", i + 2)
            i = close + 2 if close != -1 else i + 1
        elif pattern[i] == "]":
            return i + 1
        else:
            i += 1
    return len(pattern)


def _braces(pattern: str, start: int) -> tuple[int, bool]:
    """Check `{…}` at `start`: a counted repetition within MAX_REPEAT, never fuzzy matching."""
    close = pattern.find("}", start)
    inner = pattern[start + 1 : close] if close != -1 else ""
    if inner[:1] in tuple(_FUZZY) and any(op in inner for op in ("<", "=")):
        raise PatternError(f"fuzzy matching {{{inner}}} is not supported", start, _HINT)
    low, comma, high = inner.partition(",")
    if close != -1 and low.isdigit() and (not high or high.isdigit()) and (comma or not high):
        for count in (low, high):
            if count and int(count) > MAX_REPEAT:
                raise PatternError(
                    f"repetition {{{inner}}} counts above {MAX_REPEAT}", start, f"counts up to {MAX_REPEAT}"
                )
        return close + 1, True
    return start + 1, False  # a literal brace


def compile_regex(pattern: str) -> Regex:
    """Compile a /regex/ on RE2 within the caps; PatternError says what to change."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise PatternError(f"regex longer than {MAX_PATTERN_LENGTH} characters", 0, "a shorter regex")
    _check_syntax(pattern)
    try:
        compiled = re2.compile(pattern, _options())
    except re2.error as exc:
        raise _compile_error(pattern, exc) from None
    size = int(compiled._regexp.ProgramSize())
    if size > MAX_PROGRAM_SIZE:
        raise PatternError(
            f"regex too complex ({size} steps, at most {MAX_PROGRAM_SIZE})",
            0,
            "fewer or smaller counted repetitions (e.g. .{1,20} instead of .{1,100})",
        )
    return Regex(pattern, size, compiled)


def _compile_error(pattern: str, exc: Exception) -> PatternError:
    raw = exc.args[0] if exc.args else ""
    message = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    if "pattern too large" in message:
        return PatternError("regex too complex (over its memory cap)", 0, "a smaller regex")
    what, sep, fragment = message.partition(": ")
    # An unclosed group or class is wrong where the pattern ends; else where RE2 quotes it.
    missing = what.startswith("missing ")
    offset = len(pattern) if missing else pattern.find(fragment) if sep and fragment else -1
    return PatternError(f"invalid regex: {message}", max(offset, 0), "a valid regular expression")


@dataclass(frozen=True)
class Wildcards:
    """A `*` glob matched in linear time: each literal part found after the previous one.

    Greedy leftmost search is exact for globs whose only wildcard is `*`, and each part is
    looked for once, so `*a*a*a…` costs one pass over the text, never a backtracking search.
    """

    parts: tuple[str, ...]

    @classmethod
    def of(cls, pattern: str) -> Wildcards:
        return cls(tuple(pattern.lower().split("*")))

    def whole(self, text: str) -> bool:
        """Whether the glob matches all of `text` (already lower-cased)."""
        if len(self.parts) == 1:
            return text == self.parts[0]
        first, *middle, last = self.parts
        if len(text) < len(first) + len(last) or not text.startswith(first) or not text.endswith(last):
            return False
        return _in_order(middle, text, len(first), len(text) - len(last))

    def within_a_line(self, text: str) -> bool:
        """Whether the glob matches part of one line of `text` (already lower-cased)."""
        parts = [p for p in self.parts if p]
        if not parts:
            return True
        start = 0
        while (found := text.find(parts[0], start)) != -1:
            line_start = text.rfind("\n", 0, found) + 1
            line_end = text.find("\n", found)
            line_end = len(text) if line_end == -1 else line_end
            if _in_order(parts, text, line_start, line_end):
                return True
            start = line_end + 1
        return False


def _in_order(parts: list[str] | tuple[str, ...], text: str, start: int, end: int) -> bool:
    for part in parts:
        found = text.find(part, start, end)
        if found == -1:
            return False
        start = found + len(part)
    return True
