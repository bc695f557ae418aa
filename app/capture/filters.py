"""Which captures a list, a stream or an export shows."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from app.capture.analysis import has_effect_of, warnings_of
from app.capture.record import Capture, Kind
from app.capture.redact import Redactor

# A filter that does not say otherwise searches the redacted view: a secret must not be
# findable (or rebuilt prefix by prefix) through the search box.
REDACTED_SEARCH = Redactor()


@dataclass(frozen=True, slots=True)
class CaptureFilter:
    """Every field set must match; text matches summary fields and the messages as they are shown (redacted)."""

    kind: Kind | None = None
    hook_type: str | None = None
    hook_name: str | None = None
    api_id: str | None = None
    method: str | None = None
    status: int | None = None
    modified: bool | None = None
    errors: bool | None = None
    warnings: bool | None = None
    answered_by: str | None = None
    text: str | None = None
    redactor: Redactor = REDACTED_SEARCH

    def matches(self, capture: Capture) -> bool:
        if self.kind is not None and capture.kind != self.kind:
            return False
        if self.hook_type and capture.hook_type.lower() != self.hook_type.lower():
            return False
        if self.hook_name and capture.hook_name != self.hook_name:
            return False
        if self.api_id and capture.api_id != self.api_id:
            return False
        if self.method and capture.method.upper() != self.method.upper():
            return False
        if self.status is not None and capture.status != self.status:
            return False
        if self.modified is not None and has_effect_of(capture) != self.modified:
            return False
        if self.errors is not None and (capture.error is not None) != self.errors:
            return False
        if self.answered_by is not None and capture.answered_by != self.answered_by:
            return False
        if self.warnings is not None and bool(warnings_of(capture)) != self.warnings:
            return False
        return not self.text or self.redactor.contains_text(capture, self.text)

    def apply(self, captures: Iterable[Capture]) -> Iterator[Capture]:
        return (c for c in captures if self.matches(c))
