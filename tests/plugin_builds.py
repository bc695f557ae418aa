"""A plugin server in its own process, in two builds: what `verify` and shadows are checked against.

`python -m tests.plugin_builds --build 1` (or 2) serves coprocess.Dispatcher on a loopback
port and prints `listening on 127.0.0.1:PORT`. Build 2 changes one thing the client sees (the
Pre hook's X-Plan header) and some things the gateway ignores (the PostKeyAuth reply's
headers map, the Response reply's body string), so only the Pre hook's outcome differs.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc

from protogen import coprocess_common_pb2 as common
from protogen import coprocess_object_pb2 as pb
from protogen import coprocess_object_pb2_grpc as pb_grpc

REPOSITORY = Path(__file__).resolve().parent.parent


class Build(pb_grpc.DispatcherServicer):
    def __init__(self, build: int) -> None:
        self.build = build

    async def Dispatch(self, request: pb.Object, context: grpc.aio.ServicerContext) -> pb.Object:
        obj = request
        if obj.hook_type == common.Pre:
            obj.request.set_headers["X-Plan"] = "gold" if self.build == 1 else "silver"
        elif obj.hook_type == common.CustomKeyCheck:
            if obj.request.headers.get("Authorization") == "Bearer good":
                obj.session.rate, obj.session.per = 100, 1
                obj.metadata["token"] = "user-1"
            else:
                obj.request.return_overrides.response_code = 401
                obj.request.return_overrides.response_error = "bad key"
        elif obj.hook_type == common.PostKeyAuth and self.build == 2:
            obj.request.headers["X-Ignored"] = "the gateway does not read the headers map back"
        elif obj.hook_type == common.Response:
            obj.response.headers["X-Rewritten"] = "yes"
            if self.build == 2:
                obj.response.body = "the gateway sends raw_body, not this"
        return obj

    async def DispatchEvent(self, request: pb.Event, context: grpc.aio.ServicerContext) -> pb.EventReply:
        return pb.EventReply()


async def serve(build: int) -> None:
    server = grpc.aio.server()
    pb_grpc.add_DispatcherServicer_to_server(Build(build), server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"listening on 127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(0)


@asynccontextmanager
async def plugin_build(build: int) -> AsyncIterator[str]:
    """Run build 1 or 2 in a child process; yields its HOST:PORT."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.plugin_builds", "--build", str(build), stdout=asyncio.subprocess.PIPE,
        cwd=REPOSITORY,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        assert line.startswith("listening on "), line
        yield line.removeprefix("listening on ").strip()
    finally:
        if process.returncode is None:
            process.terminate()
        await asyncio.wait_for(process.wait(), 10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", type=int, choices=(1, 2), required=True)
    asyncio.run(serve(parser.parse_args().build))
