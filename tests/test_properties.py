"""Properties over random Objects and Events (hypothesis, a bounded number of examples).

capture -> API JSON -> export -> import gives identical messages; every SSE event is valid
JSON; the ring buffer's byte bound holds whatever arrives.
"""

from __future__ import annotations

import json

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st

from app.capture.record import Capture
from app.formats.document import NO_REDACTION
from app.formats.export import export_chunks, parse_document
from app.formats.views import capture_detail, summary_json
from app.store.buffer import RingBuffer
from protogen import coprocess_object_pb2 as pb
from protogen.coprocess_common_pb2 import HookType

EXAMPLES = settings(max_examples=60, deadline=None)

texts = st.text(max_size=40)
string_maps = st.dictionaries(texts, texts, max_size=6)
int64s = st.integers(min_value=-(2**63), max_value=2**63 - 1)
doubles = st.floats(allow_nan=False, allow_infinity=False)
hook_types = st.sampled_from(
    [HookType.Unknown, HookType.Pre, HookType.Post, HookType.PostKeyAuth, HookType.CustomKeyCheck, HookType.Response]
)


@st.composite
def objects(draw: st.DrawFn) -> pb.Object:
    obj = pb.Object(hook_type=draw(hook_types), hook_name=draw(texts))
    request = obj.request
    request.headers.update(draw(string_maps))
    request.set_headers.update(draw(string_maps))
    request.delete_headers.extend(draw(st.lists(texts, max_size=3)))
    request.body = draw(texts)
    request.url, request.method, request.request_uri, request.scheme = draw(st.tuples(texts, texts, texts, texts))
    request.params.update(draw(string_maps))
    request.raw_body = draw(st.binary(max_size=300))
    request.return_overrides.response_code = draw(st.integers(-(2**31), 2**31 - 1))
    request.return_overrides.headers.update(draw(string_maps))
    obj.spec.update(draw(string_maps))
    obj.metadata.update(draw(string_maps))
    if draw(st.booleans()):
        session = obj.session
        session.rate, session.per = draw(doubles), draw(doubles)
        session.quota_max, session.expires = draw(int64s), draw(int64s)
        session.metadata.update(draw(string_maps))
        session.tags.extend(draw(st.lists(texts, max_size=4)))
        session.monitor.trigger_limits.extend(draw(st.lists(doubles, max_size=3)))
        for api_id in draw(st.lists(texts, max_size=2)):
            session.access_rights[api_id].versions.extend(draw(st.lists(texts, max_size=2)))
    if draw(st.booleans()):
        response = obj.response
        response.status_code = draw(st.integers(0, 999))
        response.raw_body = draw(st.binary(max_size=300))
        response.headers.update(draw(string_maps))
        for key in draw(st.lists(texts, max_size=3)):
            response.multivalue_headers.add(key=key, values=draw(st.lists(texts, max_size=3)))
    return obj


def round_trip(captures: list[Capture]) -> list[Capture]:
    document = "".join(export_chunks(captures, 0))
    return parse_document(document.encode())


@EXAMPLES
@given(objects(), st.booleans())
def test_objects_survive_api_json_and_export_import(obj: pb.Object, echo: bool) -> None:
    data = obj.SerializeToString()
    reply = data if echo else pb.Object(hook_name="changed").SerializeToString()
    capture = Capture(kind="dispatch", request=data, reply=reply, id=1)

    detail = json.loads(json.dumps(capture_detail(capture)))  # what the API sends is plain JSON
    assert json_format.ParseDict(detail["request"], pb.Object()) == obj

    (copy,) = round_trip([capture])
    assert pb.Object.FromString(copy.request) == obj
    assert (copy.reply is copy.request) == echo
    assert copy.reply is not None and pb.Object.FromString(copy.reply) == pb.Object.FromString(reply)
    assert json.loads(summary_json(capture, NO_REDACTION))["id"] == 1  # what the list and the stream send is JSON


@EXAMPLES
@given(
    st.one_of(st.text(), st.dictionaries(texts, st.recursive(texts, lambda c: st.lists(c, max_size=3))).map(json.dumps))
)
def test_events_survive_api_json_and_export_import(payload: str) -> None:
    event = pb.Event(payload=payload)
    capture = Capture(kind="event", request=event.SerializeToString(), reply=b"", id=7)
    detail = json.loads(json.dumps(capture_detail(capture)))
    assert detail["request"].get("payload", "") == payload
    assert (detail["event"]["payload_error"] is None) == _is_json(payload)
    (copy,) = round_trip([capture])
    assert pb.Event.FromString(copy.request) == event
    assert json.loads(summary_json(capture, NO_REDACTION))["id"] == 7


@EXAMPLES
@given(st.binary(max_size=200))
def test_any_bytes_survive_export_import(data: bytes) -> None:
    capture = Capture(kind="dispatch", request=data, reply=None, error="undecodable", id=3)
    (copy,) = round_trip([capture])
    try:
        original = pb.Object.FromString(data)
    except DecodeError:
        assert copy.request == data  # kept byte for byte, as base64
        return
    original.DiscardUnknownFields()  # the JSON form keeps every known field, not unknown ones
    assert pb.Object.FromString(copy.request) == original


@EXAMPLES
@given(
    st.integers(1, 50),
    st.integers(2048, 200_000),
    st.lists(st.integers(0, 300_000), min_size=1, max_size=60),
)
def test_ring_buffer_never_exceeds_its_bounds(max_items: int, max_bytes: int, sizes: list[int]) -> None:
    store = RingBuffer(max_items, max_bytes)
    for size in sizes:
        data = bytes(size)
        store.add(Capture(kind="dispatch", request=data, reply=data))
        stats = store.stats()
        assert stats.bytes <= max_bytes and stats.count <= max_items
        assert stats.bytes == sum(c.size for c in store.oldest_first())
    assert store.last_id == len(sizes) and store.get(store.last_id) is not None


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
