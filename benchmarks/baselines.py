"""Baseline Dispatcher servers the inspector is measured against, run as their own processes.

- typed: the reference echo server's design, a typed grpc.aio servicer that returns the request Object;
- raw: a generic handler that returns the request bytes without parsing them (the Python floor);
- seed: the echo server as the coprocess tutorial writes it: typed, and for every Object it logs a
  line naming the hook and the Object as MessageToJson, to the console.

Usage: python -m benchmarks.baselines typed|raw|seed [PORT]   (prints "listening on PORT")
"""

from __future__ import annotations

import asyncio
import logging
import sys

import grpc
from google.protobuf.json_format import MessageToJson

from protogen import coprocess_object_pb2, coprocess_object_pb2_grpc

OPTIONS = [("grpc.max_receive_message_length", 100_000_000), ("grpc.max_send_message_length", 100_000_000)]


class TypedEcho(coprocess_object_pb2_grpc.DispatcherServicer):
    async def Dispatch(self, request: coprocess_object_pb2.Object, context: object) -> coprocess_object_pb2.Object:
        return request

    async def DispatchEvent(
        self, request: coprocess_object_pb2.Event, context: object
    ) -> coprocess_object_pb2.EventReply:
        return coprocess_object_pb2.EventReply()


class SeedEcho(coprocess_object_pb2_grpc.DispatcherServicer):
    """What a user writes from the tutorial: log each hook and its Object, return it unchanged."""

    def __init__(self) -> None:
        self.log = logging.getLogger("seed")

    async def Dispatch(self, request: coprocess_object_pb2.Object, context: object) -> coprocess_object_pb2.Object:
        self.log.info("Dispatch: hook %s %s", request.hook_type, request.hook_name)
        self.log.info("%s", MessageToJson(request))
        return request

    async def DispatchEvent(
        self, request: coprocess_object_pb2.Event, context: object
    ) -> coprocess_object_pb2.EventReply:
        self.log.info("DispatchEvent: %s", request.payload)
        return coprocess_object_pb2.EventReply()


async def _echo_bytes(request: bytes, context: object) -> bytes:
    return request


async def serve(kind: str, port: int) -> None:
    server = grpc.aio.server(options=OPTIONS)
    if kind == "typed":
        coprocess_object_pb2_grpc.add_DispatcherServicer_to_server(TypedEcho(), server)  # type: ignore[no-untyped-call]
    elif kind == "seed":
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        coprocess_object_pb2_grpc.add_DispatcherServicer_to_server(SeedEcho(), server)  # type: ignore[no-untyped-call]
    elif kind == "raw":
        handlers = {
            "Dispatch": grpc.unary_unary_rpc_method_handler(_echo_bytes),
            "DispatchEvent": grpc.unary_unary_rpc_method_handler(_echo_bytes),
        }
        server.add_registered_method_handlers("coprocess.Dispatcher", handlers)
    else:
        raise SystemExit(f"unknown baseline {kind!r}: typed, raw or seed")
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"listening on {bound}", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0))
