"""Copy as curl / send / grpcurl / pytest, and body downloads, over real HTTP; the generated commands
and tests are run for real against loopback servers."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import re
import shlex
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
import pytest

from app.config import Settings
from app.formats import copy_as
from app.server import Inspector
from protogen import coprocess_common_pb2 as common
from protogen import coprocess_object_pb2 as pb
from tests.conftest import Client, load_object, wait_until, with_settings
from tests.plugins import header_plugin, plugin_server
from tests.test_proxy import inspector_with

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


class Recorded(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, Any]]] = []

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        Recorded.seen.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                              "body": self.rfile.read(length)})  # fmt: skip
        self.send_response(204)
        self.end_headers()

    do_GET = do_POST = do_PUT = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[str]:
    """A stand-in for the gateway on a loopback port that records the requests it gets."""
    Recorded.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorded)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def run(command: str, cwd: Path, **env: str) -> tuple[int, str]:
    # From a file: a command line as long as the copy could be is more than execve takes.
    (cwd / "copied.sh").write_text(command)
    process = await asyncio.create_subprocess_exec(
        "bash", "copied.sh", cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", **env},
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode()


async def copy(http: httpx.AsyncClient, capture_id: int, as_: str, **params: str) -> str:
    response = await http.get(f"/api/captures/{capture_id}/copy", params={"as": as_, **params})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_curl_replays_the_clients_request_through_the_gateway(
    client: Client, http: httpx.AsyncClient, gateway: str, tmp_path: Path
) -> None:
    post = load_object("post-json-body.json")
    post.hook_type = common.Pre  # the client's request
    post.request.headers["X-Quote"] = "it's $(not run) `either`"
    await client.dispatch(post)
    later = load_object("post-json-body.json")
    later.request.url = "/rewritten"
    later.request.headers["X-Quote"] = "it's $(not run) `either`"
    await client.dispatch(later)  # a later hook of the same request (same headers: the heuristic)
    command = await copy(http, 2, "curl", gateway=gateway)
    assert command.startswith("curl")
    code, out = await run(command.rstrip("\n") + " --fail --silent --show-error", tmp_path)
    assert code == 0, out
    [seen] = Recorded.seen
    assert (seen["method"], seen["path"]) == ("POST", "/orders-api/v1/orders?dry_run=false")  # the first hook's
    assert seen["body"] == post.request.raw_body
    assert seen["headers"]["X-Quote"] == "it's $(not run) `either`"
    assert seen["headers"]["Content-Type"] == post.request.headers["Content-Type"]
    default = await copy(http, 1, "curl")
    assert shlex.split(default.replace("\\\n", ""))[-1] == "http://localhost:8080/orders-api/v1/orders?dry_run=false"
    bad = await http.get("/api/captures/1/copy", params={"as": "curl", "gateway": "javascript:alert(1)"})
    assert bad.status_code == 400
    assert (await http.get("/api/captures/1/copy", params={"as": "wget"})).status_code == 422
    assert (await http.get("/api/captures/9/copy", params={"as": "curl"})).status_code == 404


async def test_send_runs_and_the_object_arrives_again(
    inspector: Inspector, client: Client, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    pre = load_object("pre.json")
    await client.dispatch(pre)
    script = await copy(http, 1, "send", to=f"127.0.0.1:{inspector.grpc_port}")
    code, out = await run(script, tmp_path)
    assert code == 0, out
    await wait_until(lambda: inspector.store.last_id == 2, what="the sent capture")
    again = inspector.store.get(2)
    assert again is not None and pb.Object.FromString(again.request) == pre


async def test_grpcurl_carries_the_object_json(client: Client, http: httpx.AsyncClient) -> None:
    await client.dispatch(load_object("pre.json"))
    text = await copy(http, 1, "grpcurl", to="plugins.internal:5555")
    command = next(line for line in text.splitlines() if line.startswith("grpcurl"))
    assert command == "grpcurl -plaintext -d @ plugins.internal:5555 coprocess.Dispatcher/Dispatch <<'JSON'"
    body = text.split("<<'JSON'\n", 1)[1].rsplit("\nJSON\n", 1)[0]
    assert json.loads(body)["hookName"] == "MyPreHook"


async def test_pytest_skeleton_passes_against_the_plugin_and_fails_against_another(
    inspector: Inspector, tmp_path: Path
) -> None:
    async with plugin_server(header_plugin) as plugin, inspector_with(upstream=plugin.target) as (_, proxied, http):
        await proxied.dispatch(load_object("pre.json"))
        test = await copy(http, 1, "pytest", to=plugin.target)
    assert "def test_pre_myprehook_reply" in test
    path = tmp_path / "test_generated.py"
    path.write_text(test)
    passing = f"{shlex.quote(sys.executable)} -m pytest -q -p no:cacheprovider {path.name}"
    async with plugin_server(header_plugin) as again:
        code, out = await run(passing, tmp_path, PLUGIN_SERVER=again.target, PYTHONPATH=str(ROOT))
    assert code == 0, out
    # The echoing inspector does not set the plugin's headers: the test says so.
    code, out = await run(passing, tmp_path, PLUGIN_SERVER=f"127.0.0.1:{inspector.grpc_port}", PYTHONPATH=str(ROOT))
    assert code == 1 and "setHeaders" in out, out


async def test_body_download(client: Client, http: httpx.AsyncClient) -> None:
    obj = load_object("response-gzip.json")
    await client.dispatch(obj)
    raw = await http.get("/api/captures/1/body/response")
    assert raw.status_code == 200 and raw.content == obj.response.raw_body
    assert raw.headers["content-type"] == "application/octet-stream"
    assert raw.headers["content-disposition"] == 'attachment; filename="capture-1-response-body.json.gz"'
    inflated = await http.get("/api/captures/1/body/reply.response", params={"decoded": "1"})
    assert inflated.content == gzip.decompress(obj.response.raw_body)
    assert inflated.headers["content-disposition"] == 'attachment; filename="capture-1-reply-response-body.json"'
    assert (await http.get("/api/captures/1/body/request")).status_code == 404  # a GET: no body
    assert (await http.get("/api/captures/1/body/headers")).status_code == 422
    await client.event("not json")
    assert (await http.get("/api/captures/2/body/request")).status_code == 400


class TestRedacted:
    @pytest.fixture
    def settings(self) -> Settings:
        return with_settings(redact=True)()

    async def test_copies_stay_redacted(self, client: Client, http: httpx.AsyncClient) -> None:
        auth = load_object("custom-key-check.json")
        await client.dispatch(auth)
        secret = auth.request.headers["Authorization"]
        text = await copy(http, 1, "pytest")  # Python: the value from an environment variable the docstring names
        assert secret not in text and "[redacted]" not in text and "secret('AUTHORIZATION')" in text
        for as_ in ("send", "grpcurl"):  # shell: the value from a variable the comment names
            text = await copy(http, 1, as_)
            assert secret not in text and "[redacted]" not in text and '"${AUTHORIZATION:?}"' in text, as_

    async def test_the_pytest_copy_reads_redacted_values_from_the_environment(self, tmp_path: Path) -> None:
        obj = load_object("pre.json")
        obj.request.headers["Authorization"] = "Bearer s3cret-token"
        obj.request.headers["Content-Type"] = "application/json"
        obj.request.url = obj.request.request_uri = "/orders?api_key=k-123456&page=2"
        obj.request.raw_body = b'{"user": "ann", "password": "hunter22"}'
        real = {"AUTHORIZATION": "Bearer s3cret-token", "API_KEY": "k-123456", "PASSWORD": "hunter22",
                "UPSTREAM_SECRET": json.loads(obj.spec["config_data"])["upstream_secret"]}  # fmt: skip
        async with (
            plugin_server(header_plugin) as plugin,
            inspector_with(upstream=plugin.target, redact=True) as (_, proxied, http),
        ):
            await proxied.dispatch(obj)
            test = await copy(http, 1, "pytest", to=plugin.target)
            with_secrets = await copy(http, 1, "pytest", to=plugin.target, secrets="1")
        assert "[redacted]" not in test and not any(value in test for value in real.values())
        docstring = test.split('"""', 2)[1]
        assert all(name in docstring for name in real), docstring  # what to set
        path = tmp_path / "test_generated.py"
        path.write_text(test)
        command = f"{shlex.quote(sys.executable)} -m pytest -q -p no:cacheprovider {path.name}"
        async with plugin_server(header_plugin) as again:
            code, out = await run(command, tmp_path, PLUGIN_SERVER=again.target, PYTHONPATH=str(ROOT))
            assert code != 0 and "set the environment variable AUTHORIZATION" in out, out
            assert again.received == []  # unset: nothing sent
            code, out = await run(command, tmp_path, PLUGIN_SERVER=again.target, PYTHONPATH=str(ROOT), **real)
            assert code == 0, out
            [sent] = again.received
        assert sent.request.headers["Authorization"] == "Bearer s3cret-token"
        assert sent.request.url == "/orders?api_key=k-123456&page=2"
        assert sent.request.raw_body == obj.request.raw_body
        # With secrets (not --redact-strict): the real values, nothing to set.
        assert "secret(" not in with_secrets and "[redacted]" not in with_secrets
        path.write_text(with_secrets)
        async with plugin_server(header_plugin) as third:
            code, out = await run(command, tmp_path, PLUGIN_SERVER=third.target, PYTHONPATH=str(ROOT))
            assert code == 0, out
            [sent] = third.received
        assert sent.request.headers["Authorization"] == "Bearer s3cret-token"
        assert sent.request.raw_body == obj.request.raw_body

    async def test_send_reads_redacted_values_from_shell_variables(
        self, inspector: Inspector, client: Client, http: httpx.AsyncClient, tmp_path: Path
    ) -> None:
        auth = load_object("custom-key-check.json")
        auth.request.headers["X-Note"] = "costs $5 and `date` and \\n"
        await client.dispatch(auth)
        script = await copy(http, 1, "send", to=f"127.0.0.1:{inspector.grpc_port}")
        code, out = await run(script, tmp_path)
        assert code != 0 and "AUTHORIZATION" in out  # unset: nothing sent
        code, out = await run(script, tmp_path, AUTHORIZATION=auth.request.headers["Authorization"])
        assert code == 0, out
        await wait_until(lambda: inspector.store.last_id == 2, what="the sent capture")
        again = inspector.store.get(2)
        assert again is not None and pb.Object.FromString(again.request).request.headers == auth.request.headers

    async def test_curl_reads_redacted_values_from_shell_variables(
        self, client: Client, http: httpx.AsyncClient, gateway: str, tmp_path: Path
    ) -> None:
        obj = load_object("post-json-body.json")
        obj.hook_type = common.Pre
        obj.request.request_uri = obj.request.url = "/orders?api_key=k-123456&page=2"
        obj.request.raw_body = b'{"user": "ann", "password": "hunter22"}'
        await client.dispatch(obj)
        command = await copy(http, 1, "curl", gateway=gateway)
        assert "[redacted]" not in command and "hunter22" not in command and "k-123456" not in command
        assert "AUTHORIZATION" in command.split("curl", 1)[0]  # the comment says what to set
        # Unset, the command stops before sending anything.
        code, out = await run(command, tmp_path)
        assert code != 0 and "AUTHORIZATION" in out and Recorded.seen == []
        secrets = {"AUTHORIZATION": obj.request.headers["Authorization"], "API_KEY": "k-123456", "PASSWORD": "hunter22"}
        code, out = await run(command.rstrip("\n") + " --fail --silent --show-error", tmp_path, **secrets)
        assert code == 0, out
        [seen] = Recorded.seen
        assert seen["headers"]["Authorization"] == obj.request.headers["Authorization"]
        assert seen["path"] == "/orders?api_key=k-123456&page=2"
        assert seen["body"] == obj.request.raw_body


async def test_copies_and_body_downloads_decode_off_the_event_loop(
    client: Client, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A capture can be ~100 MB: decoding and printing it on the loop would stall the gateway's calls.
    # The spy only notes which thread decodes; the real decode runs.
    import app.web.copy as copy_routes

    threads: list[int] = []
    real_decode = copy_routes.decode  # type: ignore[attr-defined]

    def spy(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(copy_routes, "decode", spy)
    obj = load_object("pre.json")
    obj.request.raw_body = gzip.compress(b'{"a": 1}')
    await client.dispatch(obj)
    paths = [f"/api/captures/1/copy?as={as_}" for as_ in ("curl", "send", "grpcurl", "pytest")]
    paths += ["/api/captures/1/body/request", "/api/captures/1/body/request?decoded=1"]
    for path in paths:
        response = await http.get(path)
        assert response.status_code == 200, (path, response.text)
    assert len(threads) == len(paths)
    assert threading.get_ident() not in threads, "decoded on the event loop"


async def test_a_gzip_body_that_is_cut_short_is_a_400_not_an_empty_download(
    client: Client, http: httpx.AsyncClient
) -> None:
    obj = load_object("response-gzip.json")
    whole = bytes(obj.response.raw_body)
    for cut in (whole[:10], whole[: len(whole) // 2]):
        obj.response.raw_body = cut
        await client.dispatch(obj)
    for capture_id in (1, 2):
        response = await http.get(f"/api/captures/{capture_id}/body/response", params={"decoded": "1"})
        assert response.status_code == 400, response.content[:100]
        assert "cut short" in response.json()["detail"]
        raw = await http.get(f"/api/captures/{capture_id}/body/response")  # as it came: still a download
        assert raw.status_code == 200 and raw.content[:2] == b"\x1f\x8b"


@pytest.mark.parametrize("hook_name", ["Auth²Check", "ñame-with spaces", "١٢٣", "\u2163 roman"])
async def test_the_pytest_skeleton_is_python_whatever_the_hook_name(
    client: Client, http: httpx.AsyncClient, hook_name: str
) -> None:
    obj = load_object("pre.json")
    obj.hook_name = hook_name
    await client.dispatch(obj)
    source = (await http.get("/api/captures/1/copy", params={"as": "pytest"})).text
    compile(source, "generated_test.py", "exec")  # a SyntaxError fails the test


# --- copy as curl: what a paste into a terminal can do ----------------------------------------


async def test_curl_quotes_control_characters_so_a_paste_cannot_end_the_bracketed_paste(
    client: Client, http: httpx.AsyncClient, gateway: str, tmp_path: Path
) -> None:
    # ESC [ 201 ~ ends bash's bracketed paste: pasted raw, what follows it would run as typed.
    hostile = 'x\x1b[201~; touch pwned; echo "\x07\x9b\x7f!"'
    obj = load_object("post-json-body.json")
    obj.request.headers["X-Trace"] = hostile
    obj.request.raw_body = hostile.encode()
    await client.dispatch(obj)
    command = await copy(http, 1, "curl", gateway=gateway)
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]", command), "a raw control character in the command"
    assert "$'" in command
    code, out = await run(command.rstrip("\n") + " --fail --silent --show-error", tmp_path)
    assert code == 0, out
    assert not (tmp_path / "pwned").exists()
    [seen] = Recorded.seen
    assert seen["body"] == hostile.encode()
    assert seen["headers"]["X-Trace"].encode("latin-1").decode("utf-8") == hostile


@pytest.mark.parametrize(
    "request_uri", ["@evil.invalid/orders", "http://user:pw@evil.invalid/orders", "evil.invalid:81/orders"]
)
async def test_a_request_uri_cannot_change_the_host_curl_connects_to(
    client: Client, http: httpx.AsyncClient, gateway: str, tmp_path: Path, request_uri: str
) -> None:
    obj = load_object("pre.json")
    obj.request.request_uri = request_uri
    obj.request.url = request_uri
    await client.dispatch(obj)
    command = await copy(http, 1, "curl", gateway=gateway)
    url = shlex.split(command.replace("\\\n", ""))[-1]
    assert urlsplit(url).netloc == urlsplit(gateway).netloc, url
    code, out = await run(command.rstrip("\n") + " --fail --silent --show-error", tmp_path)
    assert code == 0, out
    [seen] = Recorded.seen
    assert seen["path"].endswith("/orders") and "evil.invalid" not in urlsplit(seen["path"]).netloc


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (json.dumps({"items": ["x" * 100] * 4000}).encode(), "a 396 KiB JSON body"),
        (b"line one\nline two with $HOME and `date` and \\n\nBODY\nno newline at the end" * 200, "text"),
        (b"ends with a newline\n" * 500, "text ending in a newline"),
        (bytes(range(256)) * 40, "binary"),
    ],
)
async def test_a_large_body_goes_to_a_file_not_onto_the_command_line(
    client: Client, http: httpx.AsyncClient, gateway: str, tmp_path: Path, body: bytes, kind: str
) -> None:
    obj = load_object("post-json-body.json")
    obj.request.raw_body = body
    await client.dispatch(obj)
    command = await copy(http, 1, "curl", gateway=gateway)
    curl_line = command[command.index("curl") :]
    assert len(curl_line) < 4096, f"{kind}: the body is still on curl's command line"
    assert "--data-binary @request-body." in curl_line
    code, out = await run(command.rstrip("\n") + " --fail --silent --show-error", tmp_path)
    assert code == 0, out
    [seen] = Recorded.seen
    assert seen["body"] == body, kind


async def test_a_body_past_the_embedded_limit_is_left_to_the_download(
    client: Client, http: httpx.AsyncClient, gateway: str
) -> None:
    obj = load_object("post-json-body.json")
    obj.request.raw_body = b"a" * (copy_as.EMBEDDED_BODY_BYTES + 1)
    await client.dispatch(obj)
    command = await copy(http, 1, "curl", gateway=gateway)
    assert len(command) < 4096 and "save it as request-body.bin" in command
