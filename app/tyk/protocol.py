"""Tyk's coprocess messages and service: names and constants the rest of the inspector shares."""

from __future__ import annotations

from protogen import coprocess_common_pb2, coprocess_object_pb2

Object = coprocess_object_pb2.Object
Event = coprocess_object_pb2.Event
EventReply = coprocess_object_pb2.EventReply

HOOK_TYPE_NAMES = {v.number: v.name for v in coprocess_common_pb2.HookType.DESCRIPTOR.values}

SERVICE_NAME = coprocess_object_pb2.DESCRIPTOR.services_by_name["Dispatcher"].full_name  # "coprocess.Dispatcher"
EMPTY_EVENT_REPLY = EventReply().SerializeToString()
