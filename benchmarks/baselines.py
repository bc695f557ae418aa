"""Baseline Dispatcher servers the inspector is measured against, run as their own processes.

- typed: the reference echo server's design, a typed grpc.aio servicer that returns the request Object;
- raw: a generic handler that returns the request bytes without parsing them (the Python floor).

Usage: python -m benchmarks.baselines typed|raw [PORT]   (prints "listening on PORT")
"""

from __future__ import annotations

import asyncio
import sys

import grpc

from protogen import coprocess_object_pb2, coprocess_object_pb2_grpc

OPTIONS = [("grpc.max_receive_message_length", 100_000_000), ("grpc.max_send_message_length", 100_000_000)]


class TypedEcho(coprocess_object_pb2_grpc.DispatcherServicer):
    async def Dispatch(self, request: coprocess_object_pb2.Object, context: object) -> coprocess_object_pb2.Object:
        return request

    async def DispatchEvent(
        self, request: coprocess_object_pb2.Event, context: object
    ) -> coprocess_object_pb2.EventReply:
        return coprocess_object_pb2.EventReply()


async def _echo_bytes(request: bytes, context: object) -> bytes:
    return request


async def serve(kind: str, port: int) -> None:
    server = grpc.aio.server(options=OPTIONS)
    if kind == "typed":
        coprocess_object_pb2_grpc.add_DispatcherServicer_to_server(TypedEcho(), server)  # type: ignore[no-untyped-call]
    elif kind == "raw":
        handlers = {
            "Dispatch": grpc.unary_unary_rpc_method_handler(_echo_bytes),
            "DispatchEvent": grpc.unary_unary_rpc_method_handler(_echo_bytes),
        }
        server.add_registered_method_handlers("coprocess.Dispatcher", handlers)
    else:
        raise SystemExit(f"unknown baseline {kind!r}: typed or raw")
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"listening on {bound}", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0))
