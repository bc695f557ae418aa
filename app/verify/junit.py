"""JUnit XML for CI systems: one test case per recorded capture, a failure per changed outcome.

The document follows the schema shipped beside this module (junit.xsd), the subset of the
JUnit format that Jenkins, GitLab, GitHub Actions reporters and most CI systems read.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.verify.run import Result

SCHEMA = Path(__file__).with_name("junit.xsd")
# XML 1.0 cannot carry most control characters, even escaped: captured text could hold any.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", value)


def junit_document(results: Sequence[Result], suite: str) -> ET.Element:
    """The <testsuites> element for these results."""
    verified = [r for r in results if r.verdict is not None]
    failures = sum(1 for r in verified if r.changed)
    skipped = len(results) - len(verified)
    seconds = f"{sum(r.seconds for r in results):.3f}"
    counts = {"tests": str(len(results)), "failures": str(failures), "errors": "0", "skipped": str(skipped)}
    root = ET.Element("testsuites", {"name": _text(suite), **counts, "time": seconds})
    stamp = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "")
    testsuite = ET.SubElement(root, "testsuite", {"name": _text(suite), **counts, "time": seconds, "timestamp": stamp})
    for result in results:
        capture = result.capture
        name = f"#{result.record_id} {capture.hook_type} {capture.hook_name} {capture.method} {capture.path}"
        case = ET.SubElement(
            testsuite,
            "testcase",
            {
                "name": _text(" ".join(name.split())),
                "classname": _text(f"{capture.api_id or 'no-api'}.{capture.hook_type or capture.kind}"),
                "time": f"{result.seconds:.3f}",
            },
        )
        if result.verdict is None:
            ET.SubElement(case, "skipped", {"message": _text(result.skipped or "")})
        elif not result.verdict.same:
            failure = ET.SubElement(case, "failure", {"message": _text(result.verdict.difference), "type": "changed"})
            lines = [
                f"recorded outcome: {result.verdict.before}",
                f"new outcome: {result.verdict.after} (from {result.target})",
                f"first of {result.verdict.differences} difference(s): {result.verdict.difference}",
            ]
            if result.error:
                lines.append(f"the new call failed: {result.error}")
            failure.text = _text("\n".join(lines))
    return root


def write_junit(results: Sequence[Result], path: str, suite: str) -> None:
    """Write the JUnit XML file (replacing it whole, never half-written)."""
    tree = ET.ElementTree(junit_document(results, suite))
    ET.indent(tree)
    temporary = f"{path}.tmp-{os.getpid()}"
    tree.write(temporary, encoding="utf-8", xml_declaration=True)
    os.replace(temporary, path)
