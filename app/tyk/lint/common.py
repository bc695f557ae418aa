"""What every lint rule shares: the warning shape and the words for what the client gets."""

from __future__ import annotations

from protogen import coprocess_common_pb2 as common
from protogen import coprocess_object_pb2 as pb

Warning_ = dict[str, str]
DROPPED = "the connection is dropped with no response"


def warning(code: str, message: str) -> Warning_:
    return {"code": code, "message": message}


def failed_status(sent: pb.Object) -> str:
    return "403 Forbidden" if sent.hook_type == common.CustomKeyCheck else "500 Middleware error"
