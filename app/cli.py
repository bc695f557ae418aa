"""Command line: `tyk-inspector [serve]` runs the inspector, `tyk-inspector send` talks to any Dispatcher.

Flags win over TYK_INSPECTOR_* environment variables, which win over the defaults.
The CLI only builds Settings and hands them on.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

from app.config import DEFAULT_GATEWAY_URL, Settings
from app.tyk.version import LATEST, TykVersion

ENV_PREFIX = "TYK_INSPECTOR_"
_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"k": 1000, "ki": 1024, "m": 1000**2, "mi": 1024**2, "g": 1000**3, "gi": 1024**3}


def byte_size(text: str) -> int:
    """'67108864', '64MiB', '100MB', '512k' -> bytes."""
    match = _SIZE.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (examples: 1048576, 64MiB, 100MB)")
    number, unit = match.groups()
    return int(number) * (_UNITS[unit.lower().rstrip("b")] if unit else 1)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}")
    return value


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def tyk_version(text: str) -> str:
    """'5.8.2', 'v5.3.11', 'latest' -> the version the gateway model follows, as X.Y.Z."""
    try:
        return str(TykVersion.parse(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _hours(text: str) -> float:
    value = seconds(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def _flag(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"not a yes/no value: {text!r}")


def _names(text: str) -> list[str]:
    """A comma-separated list, as environment variables carry several values."""
    return [part.strip() for part in text.split(",") if part.strip()]


class _EnvDefaults:
    """Reads TYK_INSPECTOR_<NAME> for an option's default, with the option's own validation."""

    def __init__(self, environ: dict[str, str]) -> None:
        self.environ = environ
        self.errors: list[str] = []

    def __call__(self, name: str, convert: Callable[[str], Any], default: Any) -> Any:
        raw = self.environ.get(ENV_PREFIX + name)
        if raw is None:
            return default
        try:
            return convert(raw)
        except (argparse.ArgumentTypeError, ValueError) as exc:
            self.errors.append(f"{ENV_PREFIX}{name}: {exc}")
            return default


def _choice(*options: str) -> Callable[[str], str]:
    def convert(text: str) -> str:
        if text not in options:
            raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(options)}")
        return text

    return convert


def build_parser(environ: dict[str, str]) -> tuple[argparse.ArgumentParser, _EnvDefaults]:
    env = _EnvDefaults(environ)
    parser = argparse.ArgumentParser(
        prog="tyk-inspector",
        description="A Tyk Gateway gRPC plugin server that captures every hook call and shows it live.",
        epilog="Every serve option can also be set as TYK_INSPECTOR_<OPTION>, e.g. TYK_INSPECTOR_HTTP_PORT=9000.",
    )
    commands = parser.add_subparsers(dest="command")

    serve = commands.add_parser("serve", help="run the inspector (the default command)")
    _add_serve_options(serve, env)

    send = commands.add_parser("send", help="send a Dispatch or DispatchEvent from a JSON file and print the reply")
    send.add_argument("file", help="protobuf JSON of an Object or Event, or an export document; - for stdin")
    send.add_argument("--to", default="localhost:50051", help="Dispatcher address (default: %(default)s)")
    kind = send.add_mutually_exclusive_group()
    kind.add_argument("--event", action="store_true", help="send as DispatchEvent (default: guessed from the file)")
    kind.add_argument("--dispatch", action="store_true", help="send as Dispatch (default: guessed from the file)")
    send.add_argument("--timeout", type=seconds, default=10.0, help="seconds per call (default: %(default)s)")
    send.add_argument(
        "--meta", action="append", default=[], metavar="KEY=VALUE",
        help="gRPC call metadata, e.g. traceparent=00-…; repeatable (an export's own is sent too)",
    )  # fmt: skip

    replay = commands.add_parser("replay", help="re-send a captured Object through a running inspector")
    replay.add_argument("capture_id", type=positive_int, metavar="ID")
    replay.add_argument("--to", help="Dispatcher HOST:PORT (default: the capture's upstream or rule)")
    replay.add_argument("--edit", metavar="FILE", help="send this protobuf-JSON Object instead of the captured one")
    replay.add_argument(
        "--inspector",
        default=environ.get(ENV_PREFIX + "URL", "http://127.0.0.1:8000"),
        help="the running inspector's URL (default: %(default)s)",
    )
    replay.add_argument("--token", default=environ.get(ENV_PREFIX + "AUTH_TOKEN"), help="its --auth-token, if any")
    _add_verify_command(commands)
    return parser, env


def _add_verify_command(commands: Any) -> None:
    verify = commands.add_parser(
        "verify",
        help="send recorded Objects to a plugin server build and compare outcomes (docs/verify.md)",
        description="Exit 0: every outcome the same; 1: any changed; 2: a usage or connection error.",
    )
    verify.add_argument("captures", metavar="CAPTURES.json", help="an export document (the expectations)")
    verify.add_argument("--upstream", metavar="HOST:PORT", help="the plugin server build to verify")
    verify.add_argument("--rules", metavar="FILE", help="route each capture as these rules do (docs/proxy.md)")
    verify.add_argument("--tyk-version", type=tyk_version, default="latest", metavar="X.Y.Z",
                        help="the gateway whose reply handling judges the outcomes (default: the latest)")  # fmt: skip
    verify.add_argument("--against-version", type=tyk_version, metavar="X.Y.Z",
                        help="judge the new replies (or, without --upstream, the recorded ones) by this Tyk "
                        "version: the upgrade impact")  # fmt: skip
    verify.add_argument("--junit", metavar="FILE", help="also write JUnit XML for CI")
    verify.add_argument("--only", metavar="QUERY", help="verify the captures this filter matches (docs/filters.md)")
    verify.add_argument("--update", action="store_true", help="rewrite CAPTURES.json with the new replies")
    verify.add_argument("--timeout", type=seconds, default=10.0, help="seconds per call (default: %(default)s)")


class _Options:
    """Adds serve options whose defaults come from TYK_INSPECTOR_<FLAG> (e.g. --http-port: HTTP_PORT)."""

    def __init__(self, parser: argparse.ArgumentParser, env: _EnvDefaults) -> None:
        self.parser = parser
        self.env = env

    def value(self, flag: str, convert: Callable[[str], Any], default: Any, help: str, **extra: Any) -> None:
        self.parser.add_argument(
            flag, type=convert, default=self.env(_env_name(flag), convert, default), help=help, **extra
        )

    def switch(self, flag: str, help: str) -> None:
        self.parser.add_argument(flag, action="store_true", default=self.env(_env_name(flag), _flag, False), help=help)

    def names(self, flag: str, env_name: str, metavar: str, help: str) -> None:
        self.parser.add_argument(
            flag, action="append", default=self.env(env_name, _names, []), metavar=metavar, help=help + "; repeatable"
        )


def _env_name(flag: str) -> str:
    return flag.removeprefix("--").replace("-", "_").upper()


def _add_serve_options(parser: argparse.ArgumentParser, env: _EnvDefaults) -> None:
    d = Settings()
    o = _Options(parser, env)
    o.value(
        "--grpc-address",
        str,
        d.grpc_address,
        "TCP address of the Dispatcher; '' for the unix socket only (default: %(default)s)",
    )
    o.value("--grpc-unix", str, None, "also listen on this unix socket (tyk.conf: unix:///PATH)", metavar="PATH")
    o.value("--http-host", str, d.http_host, "dashboard and API address (default: %(default)s)")
    o.value("--http-port", port, d.http_port, "(default: %(default)s)")
    o.value("--buffer-items", positive_int, d.buffer_items, "captures kept at most (default: %(default)s)")
    o.value(
        "--buffer-bytes",
        byte_size,
        d.buffer_bytes,
        "bytes of captures kept at most, e.g. 256MiB (default: %(default)s)",
    )
    o.value(
        "--max-message-bytes", byte_size, d.max_message_bytes, "largest gRPC message in or out (default: %(default)s)"
    )
    o.value(
        "--max-inflight-bytes",
        byte_size,
        d.max_inflight_bytes,
        "message bytes of unanswered calls held at most; beyond it calls get RESOURCE_EXHAUSTED (default: %(default)s)",
    )
    o.value("--log-format", _choice("text", "json"), d.log_format, "text or json (default: %(default)s)")
    o.value("--log-level", _choice("DEBUG", "INFO", "WARNING", "ERROR"), d.log_level, "(default: %(default)s)")
    o.value("--capture-log", _choice("off", "auto", "line", "json"), d.capture_log,
            "captures on the console: off; auto (a line each up to --capture-log-rate a second, then a summary "
            "a second); line (a line for every capture); json (every full Object, for low rates) "
            "(default: %(default)s)")  # fmt: skip
    o.value("--capture-log-rate", positive_int, d.capture_log_rate,
            "lines a second --capture-log auto writes one by one, then it summarises "
            "(default: %(default)s)")  # fmt: skip
    o.value("--auth-token", str, None, "require this token for the page and API (needed to listen beyond loopback)")
    o.switch(
        "--no-auth", "serve a non-loopback --http-host without a token (captured secrets become public to that network)"
    )
    o.names(
        "--allowed-host",
        "ALLOWED_HOSTS",
        "HOST",
        "also accept this Host header (DNS rebinding protection); '*' for any",
    )
    o.switch(
        "--no-redact", "show credentials (Authorization/Cookie headers, session secrets) in the page, API and exports"
    )
    o.switch(
        "--redact-strict",
        "no reveal of a redacted value and no copy with secrets from the page or API (for shared deployments)",
    )
    o.names("--redact-header", "REDACT_HEADERS", "NAME", "another header whose value to redact")
    o.names("--redact-metadata", "REDACT_METADATA", "KEY", "a metadata key (Object, session, gRPC call) to redact")
    o.names("--redact-query", "REDACT_QUERY", "KEY", "a query key whose value to redact (url, request_uri, params)")
    o.names("--redact-body", "REDACT_BODY", "KEY|PATH",
            "a JSON key (anywhere) or dotted path (user.card, items.*.pin) to redact in bodies")  # fmt: skip
    o.value("--upstream", str, None, "proxy mode: forward every call to this plugin server and capture its reply",
            metavar="HOST:PORT")  # fmt: skip
    o.value("--rules", str, None, "routing rules (YAML or JSON): upstream, mock or echo per API, hook, method, path; "
            "reloaded on change", metavar="FILE")  # fmt: skip
    o.value("--shadow", str, None, "after the gateway has its answer, send each Object to this plugin server too "
            "and record whether its outcome differs (docs/proxy.md#shadow)", metavar="HOST:PORT")  # fmt: skip
    o.value("--shadow-deadline", seconds, d.shadow_deadline_seconds, "seconds each shadow call may take "
            "(default: %(default)s)")  # fmt: skip
    o.value("--otel-endpoint", str, None, "export every call as an OpenTelemetry span to this OTLP/gRPC collector, "
            "e.g. http://localhost:4317 (default: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT "
            "when set); needs pip install 'tyk-inspector[otel]'", metavar="URL")  # fmt: skip
    o.value("--intercept", str, "", "hold the gateway's Dispatch calls this filter matches until you let them go "
            "in the page (docs/intercept.md)", metavar="QUERY")  # fmt: skip
    o.value("--intercept-timeout", seconds, d.intercept_timeout_seconds, "seconds a held call waits before it "
            "continues by itself (default: %(default)s)")  # fmt: skip
    o.value("--intercept-max", positive_int, d.intercept_max, "calls held at most at once; past it calls pass "
            "unheld (default: %(default)s)")  # fmt: skip
    o.switch("--tag-requests", "add an X-Tyk-Inspector-Request header through the Pre hook's reply (echo or mock) so "
             "every hook of a request is tied to it; changes traffic: the upstream sees the header")  # fmt: skip
    o.names("--gateway-url", "GATEWAY_URL", "URL", "a gateway's base URL: API names, hooks and version are read "
            "from its /hello and /tyk/apis; the first is used for copy as curl (default: "
            + d.gateway_url + ")")  # fmt: skip
    o.value("--gateway-secret", str, None, "the gateway's `secret` (tyk.conf), sent as x-tyk-authorization to "
            "read /tyk/apis; prefer --gateway-secret-file or the environment", metavar="SECRET")  # fmt: skip
    o.value("--gateway-secret-file", str, None, "read the gateway's secret from this file", metavar="FILE")
    o.value("--tyk-version", tyk_version, None, "the Tyk Gateway version whose reply handling the outcome, lint and "
            "diff follow, e.g. 5.3.2 (default: the gateway's /hello, else " + d.tyk_version + ")",
            metavar="X.Y.Z")  # fmt: skip
    o.value("--tls-cert", str, None, "serve the page over HTTPS with this certificate (PEM)")
    o.value("--tls-key", str, None, "the private key for --tls-cert (PEM)")
    o.value("--event-loop", _choice("auto", "asyncio", "uvloop"), d.event_loop,
            "auto (uvloop when installed), asyncio or uvloop (default: %(default)s)")  # fmt: skip
    o.value("--store", str, d.store, "memory (this process), or redis://HOST:PORT/DB, rediss://HOST:PORT/DB"
            "[?ssl_ca_certs=CA.pem] (TLS) or unix:///path/redis.sock: one store shared by every replica, kept "
            "across restarts (default: %(default)s)", metavar="URL")  # fmt: skip
    o.value("--store-prefix", str, d.store_prefix, "prefix of the Redis keys; replicas sharing it share captures "
            "(default: %(default)s)")  # fmt: skip
    o.value("--store-queue-items", positive_int, d.store_queue_items,
            "captures waiting for Redis at most; more are dropped and counted (default: %(default)s)")  # fmt: skip
    o.value("--store-queue-bytes", byte_size, d.store_queue_bytes,
            "bytes of captures waiting for Redis at most (default: %(default)s)")  # fmt: skip
    o.value(
        "--shutdown-grace",
        seconds,
        d.shutdown_grace_seconds,
        "seconds in-flight calls get on shutdown (default: %(default)s)",
    )
    o.value("--http-header-timeout", seconds, d.http_header_timeout_seconds,
            "close an HTTP connection whose request headers take longer (default: %(default)s s)")  # fmt: skip
    o.value("--http-keep-alive", positive_int, d.http_keep_alive_seconds,
            "close an idle keep-alive HTTP connection after this many seconds (default: %(default)s)")  # fmt: skip
    o.value("--http-max-connections", positive_int, d.http_max_connections,
            "HTTP connections open at most; a new one pushes out an idle one (default: %(default)s)")  # fmt: skip
    o.names("--replay-allow", "REPLAY_ALLOW", "HOST:PORT",
            "also let replay reach this plugin server (besides --upstream, rule targets and loopback)")  # fmt: skip
    o.switch("--replay-anywhere", "let replay reach any HOST:PORT the page or API names")
    o.value("--auth-token-file", str, None, "read the access token from this file (keeps it out of `ps`)",
            metavar="FILE")  # fmt: skip
    o.value("--session-hours", _hours, d.session_seconds / 3600,
            "a login lasts this long (default: %(default)s)")  # fmt: skip


def _auth_token(args: argparse.Namespace) -> str | None:
    """--auth-token, or the first line of --auth-token-file (which keeps the token out of `ps`)."""
    return _secret(args.auth_token, args.auth_token_file, "--auth-token", "token")


def _secret(given: str | None, file_name: str | None, flag: str, what: str) -> str | None:
    """A secret given as FLAG (or its environment variable), or the first line of FLAG-file."""
    if not file_name:
        return str(given) if given else None
    if given:
        raise ValueError(f"{flag} and {flag}-file: give one of them")
    try:
        with open(file_name, encoding="utf-8") as file:
            secret = file.readline().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{flag}-file {file_name}: {exc}") from None
    if not secret:
        raise ValueError(f"{flag}-file {file_name}: the file holds no {what}")
    return secret


def _otel_from_env() -> str | None:
    """OpenTelemetry's own variables turn the export on too (the exporter reads the others: headers, TLS...)."""
    return os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None


def _gateway_secret(args: argparse.Namespace) -> str | None:
    """--gateway-secret (or TYK_INSPECTOR_GATEWAY_SECRET), or the first line of --gateway-secret-file."""
    return _secret(args.gateway_secret, args.gateway_secret_file, "--gateway-secret", "secret")


def settings_from_args(args: argparse.Namespace) -> Settings:
    return Settings(
        grpc_address=args.grpc_address,
        grpc_unix_socket=args.grpc_unix or None,
        http_host=args.http_host,
        http_port=args.http_port,
        buffer_items=args.buffer_items,
        buffer_bytes=args.buffer_bytes,
        max_message_bytes=args.max_message_bytes,
        max_inflight_bytes=args.max_inflight_bytes,
        log_format=args.log_format,
        log_level=args.log_level,
        capture_log=args.capture_log,
        capture_log_rate=args.capture_log_rate,
        shutdown_grace_seconds=args.shutdown_grace,
        http_header_timeout_seconds=args.http_header_timeout,
        http_keep_alive_seconds=args.http_keep_alive,
        http_max_connections=args.http_max_connections,
        replay_allow=tuple(args.replay_allow),
        replay_anywhere=args.replay_anywhere,
        session_seconds=args.session_hours * 3600,
        event_loop=args.event_loop,
        auth_token=_auth_token(args),
        allow_no_auth=args.no_auth,
        allowed_hosts=tuple(args.allowed_host),
        redact=not args.no_redact,
        redact_strict=args.redact_strict,
        redact_headers=tuple(args.redact_header),
        redact_metadata=tuple(args.redact_metadata),
        redact_query=tuple(args.redact_query),
        redact_body=tuple(args.redact_body),
        tls_cert=args.tls_cert or None,
        tls_key=args.tls_key or None,
        upstream=args.upstream or None,
        rules_file=args.rules or None,
        shadow=args.shadow or None,
        otel_endpoint=args.otel_endpoint or _otel_from_env(),
        shadow_deadline_seconds=args.shadow_deadline,
        tyk_version=args.tyk_version or LATEST,
        tyk_version_given=args.tyk_version is not None,
        tag_requests=args.tag_requests,
        gateway_url=args.gateway_url[0] if args.gateway_url else DEFAULT_GATEWAY_URL,
        gateway_urls=tuple(args.gateway_url),
        gateway_secret=_gateway_secret(args),
        intercept=args.intercept,
        intercept_timeout_seconds=args.intercept_timeout,
        intercept_max=args.intercept_max,
        store=args.store,
        store_prefix=args.store_prefix,
        store_queue_items=args.store_queue_items,
        store_queue_bytes=args.store_queue_bytes,
    )


def main(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> int:
    parser, env = build_parser(dict(os.environ) if environ is None else environ)
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("serve", "send", "replay", "verify", "-h", "--help"):
        argv.insert(0, "serve")  # `tyk-inspector --http-port 9000` means serve
    args = parser.parse_args(argv)
    if env.errors:
        parser.error("; ".join(env.errors))
    if args.command == "send":
        from app.proxy.send import send_file

        return send_file(
            args.file, args.to, event=args.event, dispatch=args.dispatch, timeout=args.timeout, meta=args.meta
        )
    if args.command == "verify":
        from app.verify.run import Options
        from app.verify.run import main as verify

        return verify(Options(args.captures, args.upstream, args.rules, args.tyk_version, args.against_version,
                              args.junit, args.only, args.update, args.timeout))  # fmt: skip
    if args.command == "replay":
        from app.proxy.send import replay_capture

        return replay_capture(args.inspector, args.capture_id, to=args.to, edit=args.edit, token=args.token)
    try:
        settings = settings_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    if settings.otel_endpoint:
        from app.telemetry import AVAILABLE, INSTALL_HINT

        if not AVAILABLE:
            parser.error(f"--otel-endpoint: {INSTALL_HINT}")
    from app.logs import configure_logging
    from app.server import serve

    configure_logging(settings.log_format, settings.log_level)
    with asyncio.Runner(loop_factory=loop_factory(settings.event_loop)) as runner:
        return runner.run(serve(settings))


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when asked for (or, with "auto", when installed): it takes about a fifth off
    the CPU each gRPC call costs (docs/benchmarks.md)."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise SystemExit("--event-loop uvloop: uvloop is not installed (pip install uvloop)") from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory
