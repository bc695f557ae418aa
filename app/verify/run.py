"""`tyk-inspector verify`: recorded traffic as a contract test for a plugin server build.

Each recorded Object of an export goes to the plugin server (or wherever the rules route
it); the outcome of the new reply is compared with the outcome of the recorded one in the
gateway's terms (app.tyk.compare). Without a plugin server, `--against-version` compares
the recorded replies under two Tyk versions: the upgrade impact. Exit codes: 0 all the
same, 1 any changed, 2 a usage or connection error.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import grpc

from app.capture.record import Capture
from app.formats.export import ImportFormatError, export_chunks, parse_document
from app.grpc_service import forwardable
from app.live.capture_log import printable
from app.proxy.mock import mock_reply
from app.proxy.rules import Rules, RulesError, load_rules, proxy_all
from app.proxy.upstream import UpstreamPool
from app.query.matcher import Searcher, compile_query
from app.query.parser import QueryError
from app.redaction.redact import Redactor
from app.tyk.compare import Verdict, compare
from app.tyk.outcome import Gateway
from app.tyk.version import TykVersion
from app.verify.junit import write_junit

EXIT_SAME, EXIT_CHANGED, EXIT_ERROR = 0, 1, 2
DEFAULT_TIMEOUT = 10.0
CONNECT_SECONDS = 5.0
CONCURRENCY = 8
"""Calls in flight at once: enough to keep a plugin server busy, few enough not to flood it."""
MAX_MESSAGE_BYTES = 100_000_000
COLUMN = 60
"""Characters a table column shows at most (the difference, last, is never cut)."""


class VerifyError(Exception):
    """A usage or connection problem (exit 2); the message says what to change."""


@dataclass(frozen=True, slots=True)
class Options:
    captures: str
    upstream: str | None = None
    rules: str | None = None
    tyk_version: str = "latest"
    against_version: str | None = None
    junit: str | None = None
    only: str | None = None
    update: bool = False
    timeout: float = DEFAULT_TIMEOUT


@dataclass(slots=True)
class Result:
    """One recorded capture, verified."""

    capture: Capture
    record_id: int
    verdict: Verdict | None = None
    """None: skipped (see `skipped`)."""
    skipped: str | None = None
    target: str = ""
    """Who answered this time: HOST:PORT, mock, echo, or Tyk X.Y.Z for the upgrade impact."""
    error: str | None = None
    """The gRPC error of the new call, if it failed (its outcome is then the gateway's for a failed call)."""
    reply: bytes | None = None
    seconds: float = 0.0
    matched: bool = True
    """False: left out by --only (not reported; --update keeps it as it was)."""

    @property
    def changed(self) -> bool:
        return self.verdict is not None and not self.verdict.same


@dataclass(slots=True)
class Report:
    everything: list[Result] = field(default_factory=list)
    """Every capture of the file, in its order."""
    redacted: bool = False

    @property
    def results(self) -> list[Result]:
        """The captures reported on: those --only matched."""
        return [r for r in self.everything if r.matched]

    @property
    def verified(self) -> list[Result]:
        return [r for r in self.results if r.verdict is not None]

    @property
    def changed(self) -> list[Result]:
        return [r for r in self.results if r.changed]


def main(options: Options, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run the verification and print the table; the exit code (0 same, 1 changed, 2 error)."""
    try:
        report = asyncio.run(verify(options))
    except VerifyError as exc:
        print(f"tyk-inspector verify: {exc}", file=err)
        return EXIT_ERROR
    if report.redacted:
        print(
            f'note: {options.captures} was exported redacted: hidden values were sent as "[redacted]"; export '
            "with --no-redact for a faithful contract",
            file=err,
        )
    print_table(report, out)
    if options.junit:
        try:
            write_junit(report.results, options.junit, suite=f"tyk-inspector verify {options.captures}")
        except OSError as exc:
            print(f"tyk-inspector verify: cannot write --junit {options.junit}: {exc.strerror}", file=err)
            return EXIT_ERROR
    if options.update:
        write_update(options.captures, report)
        print(f"expectations updated in {options.captures} from the new replies", file=out)
        return EXIT_SAME
    return EXIT_CHANGED if report.changed else EXIT_SAME


async def verify(options: Options) -> Report:
    """Send (or re-judge) every selected capture and compare outcomes."""
    gateway = Gateway(version=_version(options.tyk_version, "--tyk-version"))
    against = (
        Gateway(version=_version(options.against_version, "--against-version")) if options.against_version else None
    )
    if not options.upstream and not options.rules and against is None:
        raise VerifyError(
            "give --upstream HOST:PORT (or --rules FILE), or --against-version X.Y.Z for the upgrade impact"
        )
    if options.update and options.upstream is None and options.rules is None:
        raise VerifyError(
            "--update needs a plugin server (--upstream or --rules) whose replies become the expectations"
        )
    rules = _rules(options)
    report = load(options.captures)
    selected = _select(report, options.only, gateway)
    if rules is None:
        for result in selected:
            result.target = f"Tyk {against.version if against else gateway.version}"
            result.reply = result.capture.reply
            result.verdict = compare(
                result.capture.request, result.capture.reply, result.capture.reply, gateway, against
            )
        return report
    pool = UpstreamPool(MAX_MESSAGE_BYTES)
    try:
        await _connect({rule.upstream for r in selected if (rule := rules.route(r.capture)).upstream})
        semaphore = asyncio.Semaphore(CONCURRENCY)

        async def one(result: Result) -> None:
            async with semaphore:
                await _send(pool, rules, result, options.timeout)
            result.verdict = compare(result.capture.request, result.capture.reply, result.reply, gateway, against)

        await asyncio.gather(*(one(r) for r in selected))
    finally:
        await pool.close()
    return report


def _version(text: str | None, flag: str) -> TykVersion:
    try:
        return TykVersion.parse(text or "latest")
    except ValueError as exc:
        raise VerifyError(f"{flag}: {exc}") from None


def _rules(options: Options) -> Rules | None:
    if options.rules:
        try:
            return load_rules(options.rules, options.upstream)
        except RulesError as exc:
            raise VerifyError(f"--rules: {exc}") from None
    return proxy_all(options.upstream) if options.upstream else None


def load(path: str) -> Report:
    """The captures of an export document (docs/export-format.md), each with the id it was exported with."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise VerifyError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        captures = parse_document(text)
        doc = json.loads(text)  # the header and the exported ids, which an import does not keep
    except (ImportFormatError, ValueError) as exc:
        raise VerifyError(f"{path} is not a Tyk Inspector export: {exc}") from None
    report = Report(redacted=bool(doc.get("redacted")))
    for capture, record in zip(captures, doc.get("captures") or [], strict=True):
        record_id = record.get("id")
        report.everything.append(Result(capture, record_id if isinstance(record_id, int) else 0))
    return report


def _select(report: Report, only: str | None, gateway: Gateway) -> list[Result]:
    """The captures to verify: Dispatch calls whose Object was recorded, matching --only."""
    matcher = None
    if only:
        try:
            matcher = compile_query(only, Searcher(gateway=gateway))
        except QueryError as exc:
            raise VerifyError(f"--only {only!r}: {exc}") from None
    selected = []
    for result in report.everything:
        capture = result.capture
        if matcher is not None and not matcher.matches(capture):
            result.matched = False
        elif capture.kind != "dispatch":
            result.skipped = "an event: the gateway ignores the reply"
        elif not capture.hook_type or capture.truncated:
            result.skipped = "no Object recorded" + (" (truncated)" if capture.truncated else "")
        elif capture.grpc_status == "CANCELLED":
            result.skipped = "the gateway went away before the reply: nothing to compare with"
        else:
            selected.append(result)
    return selected


async def _connect(targets: set[str | None]) -> None:
    """Fail fast (exit 2) when a plugin server cannot be reached at all, rather than report every call as changed."""
    for target in sorted(t for t in targets if t):
        async with grpc.aio.insecure_channel(target.removeprefix("tcp://")) as channel:
            try:
                await asyncio.wait_for(channel.channel_ready(), CONNECT_SECONDS)
            except TimeoutError:
                raise VerifyError(
                    f"cannot connect to the plugin server at {target} within {CONNECT_SECONDS:g} s"
                ) from None


async def _send(pool: UpstreamPool, rules: Rules, result: Result, seconds: float) -> None:
    capture = result.capture
    rule = rules.route(capture)
    began = time.perf_counter()
    if rule.upstream:
        result.target = rule.upstream
        try:
            result.reply = await pool.call(
                rule.upstream, "Dispatch", capture.request, seconds, forwardable(capture.metadata)
            )
        except grpc.aio.AioRpcError as exc:
            result.error = f"{exc.code().name}: {exc.details()}"
            result.reply = None
    elif rule.mock is not None:
        result.target = "mock"
        result.reply = mock_reply(capture.request, rule.mock)
    else:
        result.target = "echo"
        result.reply = capture.request
    result.seconds = time.perf_counter() - began


def print_table(report: Report, out: TextIO) -> None:
    """Per capture: id, hook, API, request, same/CHANGED and the one-line difference; then the totals."""
    rows = [("ID", "HOOK", "API", "REQUEST", "RESULT", "DIFFERENCE")]
    for result in report.results:
        capture = result.capture
        hook = f"{capture.hook_type} {capture.hook_name}".strip() or capture.kind
        request = f"{capture.method} {capture.path}".strip()
        if result.verdict is None:
            outcome, difference = "skipped", result.skipped or ""
        elif result.verdict.same:
            outcome, difference = "same", ""
        else:
            outcome = "CHANGED"
            more = result.verdict.differences - 1
            difference = result.verdict.difference + (f" (+{more} more)" if more else "")
            if result.error:
                difference += f" [{result.error}]"
        rows.append(
            (str(result.record_id), printable(hook), printable(capture.api_id), printable(request), outcome,
             printable(difference))
        )  # fmt: skip
    widths = [min(max(len(row[i]) for row in rows), COLUMN) for i in range(5)]
    for row in rows:
        cells = [cell[:COLUMN].ljust(width) for cell, width in zip(row[:5], widths, strict=True)]
        print("  ".join([*cells, row[5]]).rstrip(), file=out)
    verified, changed = len(report.verified), len(report.changed)
    skipped = len(report.results) - verified
    print(
        f"\n{verified} verified: {verified - changed} same, {changed} changed"
        + (f", {skipped} skipped" if skipped else ""),
        file=out,
    )


def write_update(path: str, report: Report) -> None:
    """Rewrite the export with the new replies as the recorded ones (snapshot-style --update)."""
    captures = []
    for result in report.everything:
        capture = result.capture
        capture.id = result.record_id
        if result.verdict is not None:
            capture.reply = result.reply
            capture.answered_by = "upstream" if result.target not in ("mock", "echo") else result.target
            capture.upstream = result.target if capture.answered_by == "upstream" else None
            capture.upstream_status = None if result.error is None else result.error.split(":", 1)[0]
            capture.grpc_status = "OK" if result.error is None else capture.upstream_status
            capture.error = None if result.error is None else f"upstream {result.target}: {result.error}"
        captures.append(capture)
    redactor = Redactor(enabled=report.redacted)
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as file:
        for chunk in export_chunks(captures, time.time_ns() // 1000, redactor):
            file.write(chunk)
    os.replace(temporary, path)
