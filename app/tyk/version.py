"""Tyk Gateway versions, and the reply handling that changed between them."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

LATEST = "5.14.0"
"""The newest stable gateway the model follows (its behaviour is the default)."""

_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?(?:[-+.].*)?")


@dataclass(frozen=True, slots=True, order=True)
class TykVersion:
    major: int
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, text: str) -> TykVersion:
        """'5.8.2', 'v5.3.11', '5.15.0-rc7' or 'latest'; raises ValueError naming the expected form."""
        if text.strip().lower() in ("", "latest"):
            text = LATEST
        found = _VERSION.fullmatch(text.strip())
        if found is None:
            raise ValueError(f"Tyk version {text!r}: expected MAJOR.MINOR[.PATCH] such as 5.8.2, or 'latest'")
        major, minor, patch = found.groups()
        return cls(int(major), int(minor), int(patch or 0))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    def at_least(self, *releases: str) -> bool:
        """Whether this gateway has a change released in each of `releases` (one per maintained line).

        `at_least("5.8.0", "5.3.11")`: in 5.8.0 and later, and in 5.3.11 and later 5.3.x.
        """
        for release in releases:
            first = _release(release)
            same_line = (self.major, self.minor) == (first.major, first.minor)
            if self >= first and (same_line or release == releases[0]):
                return True
        return False

    @property
    def has_multivalue_headers(self) -> bool:
        """Response hooks carry `multivalue_headers` (5.2.0; back-ported to 5.0.4 and 5.1.1)."""
        return self.at_least("5.2.0", "5.0.4", "5.1.1")

    @property
    def keeps_multiple_values(self) -> bool:
        """The Response hook header sync keeps every value of a multi-valued header (TT-13440)."""
        return self.at_least("5.8.0", "5.3.11")

    @property
    def has_oas_plugin_arrays(self) -> bool:
        """Tyk OAS `prePlugins`/`postPlugins`/... arrays (older gateways: `prePlugin: {plugins: [...]}`)."""
        return self >= TykVersion(5, 3, 0)


@functools.lru_cache(maxsize=64)  # the few release strings the model names
def _release(text: str) -> TykVersion:
    return TykVersion.parse(text)


LATEST_VERSION = TykVersion.parse(LATEST)
