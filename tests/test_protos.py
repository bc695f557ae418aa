"""The protos match Tyk's wire format, and the committed generated code is fresh."""

from __future__ import annotations

import filecmp
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from protogen import (
    coprocess_common_pb2,
    coprocess_mini_request_object_pb2,
    coprocess_object_pb2,
    coprocess_response_object_pb2,
    coprocess_return_overrides_pb2,
    coprocess_session_state_pb2,
)

ROOT = Path(__file__).resolve().parent.parent


def test_committed_generated_code_is_fresh(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_protos.py"), str(tmp_path)], check=True)
    fresh = sorted(p.name for p in (tmp_path / "protogen").iterdir())
    committed = sorted(p.name for p in (ROOT / "protogen").iterdir() if p.is_file())
    assert fresh == committed, "protogen/ has other files than a fresh generation: run `make build`"
    _, mismatch, errors = filecmp.cmpfiles(tmp_path / "protogen", ROOT / "protogen", fresh, shallow=False)
    assert not mismatch and not errors, f"stale generated files {mismatch + errors}: run `make build`"


# --- wire encoding by hand, from the field numbers in Tyk's protocol facts -------------------------


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int32/int64 are ten-byte two's complement varints
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def f_varint(number: int, value: int) -> bytes:
    return tag(number, 0) + varint(value)


def f_double(number: int, value: float) -> bytes:
    return tag(number, 1) + struct.pack("<d", value)


def f_bytes(number: int, value: bytes | str) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return tag(number, 2) + varint(len(data)) + data


def f_map(number: int, entries: dict[str, Any]) -> bytes:
    out = b""
    for key, value in entries.items():
        encoded = value if isinstance(value, bytes) and not isinstance(value, str) else str(value).encode()
        out += f_bytes(number, f_bytes(1, key) + f_bytes(2, encoded))
    return out


# (field number, field name, wire encoder, value): SessionState, all 34 fields.
ACCESS_DEFINITION = (
    f_bytes(1, "Orders")
    + f_bytes(2, "api-1")
    + f_bytes(3, "v1")
    + f_bytes(3, "v2")
    + f_bytes(4, f_bytes(1, "/orders") + f_bytes(2, "GET") + f_bytes(2, "POST"))
)
SESSION_FIELDS: list[tuple[int, str, bytes, Any]] = [
    (1, "last_check", f_varint(1, 11), 11),
    (2, "allowance", f_double(2, 2.5), 2.5),
    (3, "rate", f_double(3, 100.0), 100.0),
    (4, "per", f_double(4, 60.0), 60.0),
    (5, "expires", f_varint(5, 1767225600), 1767225600),
    (6, "quota_max", f_varint(6, -1), -1),
    (7, "quota_renews", f_varint(7, 1735689600), 1735689600),
    (8, "quota_remaining", f_varint(8, 9876), 9876),
    (9, "quota_renewal_rate", f_varint(9, 2592000), 2592000),
    (11, "org_id", f_bytes(11, "org-1"), "org-1"),
    (12, "oauth_client_id", f_bytes(12, "client-1"), "client-1"),
    (16, "hmac_enabled", f_varint(16, 1), True),
    (17, "hmac_secret", f_bytes(17, "hmac!"), "hmac!"),
    (18, "is_inactive", f_varint(18, 1), True),
    (19, "apply_policy_id", f_bytes(19, "pol-0"), "pol-0"),
    (20, "data_expires", f_varint(20, 20), 20),
    (22, "enable_detailed_recording", f_varint(22, 1), True),
    (25, "alias", f_bytes(25, "portal-key"), "portal-key"),
    (26, "last_updated", f_bytes(26, "1735689600"), "1735689600"),
    (27, "id_extractor_deadline", f_varint(27, 1767225602), 1767225602),
    (28, "session_lifetime", f_varint(28, 3600), 3600),
    (30, "certificate", f_bytes(30, "cert-id"), "cert-id"),
    (31, "max_query_depth", f_varint(31, 7), 7),
    (32, "key_id", f_bytes(32, "key-1"), "key-1"),
    (33, "post_expiry_action", f_bytes(33, "delete"), "delete"),
    (34, "post_expiry_grace_period", f_varint(34, -1), -1),
]


def test_session_state_scalar_fields_decode_at_tyk_numbers() -> None:
    wire = b"".join(encoded for _, _, encoded, _ in SESSION_FIELDS)
    session = coprocess_session_state_pb2.SessionState.FromString(wire)
    for number, name, _, expected in SESSION_FIELDS:
        assert getattr(session, name) == expected, f"SessionState field {number} ({name})"
        assert session.DESCRIPTOR.fields_by_name[name].number == number


def test_session_state_nested_and_repeated_fields_decode_at_tyk_numbers() -> None:
    wire = (
        f_bytes(10, f_bytes(1, "api-1") + f_bytes(2, ACCESS_DEFINITION))
        + f_map(13, {"oauth-key": "client"})
        + f_bytes(14, f_bytes(1, "pw") + f_bytes(2, "bcrypt"))
        + f_bytes(15, f_bytes(1, "jwt-secret"))
        + f_bytes(21, tag(1, 2) + varint(16) + struct.pack("<dd", 80.0, 60.0))  # packed doubles
        + f_map(23, {"tenant": "acme"})
        + f_bytes(24, "gold")
        + f_bytes(24, "eu")
        + f_bytes(29, "pol-1")
        + f_bytes(29, "pol-2")
    )
    session = coprocess_session_state_pb2.SessionState.FromString(wire)
    rights = session.access_rights["api-1"]
    assert (rights.api_name, rights.api_id, list(rights.versions)) == ("Orders", "api-1", ["v1", "v2"])
    assert [(s.url, list(s.methods)) for s in rights.allowed_urls] == [("/orders", ["GET", "POST"])]
    assert dict(session.oauth_keys) == {"oauth-key": "client"}
    assert (session.basic_auth_data.password, session.basic_auth_data.hash) == ("pw", "bcrypt")
    assert session.jwt_data.secret == "jwt-secret"
    assert list(session.monitor.trigger_limits) == [80.0, 60.0]
    assert dict(session.metadata) == {"tenant": "acme"}
    assert list(session.tags) == ["gold", "eu"]
    assert list(session.apply_policies) == ["pol-1", "pol-2"]


def test_request_fields_decode_at_tyk_numbers() -> None:
    overrides = (
        f_varint(1, 401)
        + f_bytes(2, "denied")
        + f_map(3, {"WWW-Authenticate": "Bearer"})
        + f_varint(4, 1)
        + f_bytes(5, "body!")
    )
    wire = (
        f_map(1, {"Host": "gw"})
        + f_map(2, {"X-Set": "1"})
        + f_bytes(3, "X-Del")
        + f_bytes(4, "text body")
        + f_bytes(5, "/path?q=1")
        + f_map(6, {"q": "1"})
        + f_map(7, {"added": "2"})
        + f_map(8, {"ext": "3"})
        + f_bytes(9, "gone")
        + f_bytes(10, overrides)
        + f_bytes(11, "POST")
        + f_bytes(12, "/raw?q=1")
        + f_bytes(13, "https")
        + f_bytes(14, b"\x00\xffbinary")
    )
    request = coprocess_mini_request_object_pb2.MiniRequestObject.FromString(wire)
    assert dict(request.headers) == {"Host": "gw"}
    assert dict(request.set_headers) == {"X-Set": "1"}
    assert list(request.delete_headers) == ["X-Del"]
    assert request.body == "text body"
    assert request.url == "/path?q=1"
    assert dict(request.params) == {"q": "1"}
    assert dict(request.add_params) == {"added": "2"}
    assert dict(request.extended_params) == {"ext": "3"}
    assert list(request.delete_params) == ["gone"]
    assert (request.method, request.request_uri, request.scheme) == ("POST", "/raw?q=1", "https")
    assert request.raw_body == b"\x00\xffbinary"
    ro = request.return_overrides
    assert (ro.response_code, ro.response_error, ro.override_error, ro.response_body) == (401, "denied", True, "body!")
    assert dict(ro.headers) == {"WWW-Authenticate": "Bearer"}
    assert coprocess_return_overrides_pb2.ReturnOverrides.FromString(f_varint(1, -1)).response_code == -1


def test_object_response_and_event_decode_at_tyk_numbers() -> None:
    response = (
        f_varint(1, 301)
        + f_bytes(2, b"\x1f\x8b")
        + f_bytes(3, "moved")
        + f_map(4, {"Location": "/new"})
        + f_bytes(5, f_bytes(1, "Set-Cookie") + f_bytes(2, "a=1") + f_bytes(2, "b=2"))
    )
    wire = (
        f_varint(1, 5)
        + f_bytes(2, "MyResponseHook")
        + f_bytes(3, f_bytes(11, "GET"))
        + f_bytes(4, f_bytes(25, "alias"))
        + f_map(5, {"token": "abc"})
        + f_map(6, {"APIID": "api-1", "OrgID": "org-1"})
        + f_bytes(7, response)
    )
    obj = coprocess_object_pb2.Object.FromString(wire)
    assert obj.hook_type == coprocess_common_pb2.Response == 5
    assert obj.hook_name == "MyResponseHook"
    assert obj.request.method == "GET"
    assert obj.session.alias == "alias"
    assert dict(obj.metadata) == {"token": "abc"}
    assert dict(obj.spec) == {"APIID": "api-1", "OrgID": "org-1"}
    r = obj.response
    assert (r.status_code, r.raw_body, r.body, dict(r.headers)) == (301, b"\x1f\x8b", "moved", {"Location": "/new"})
    assert [(h.key, list(h.values)) for h in r.multivalue_headers] == [("Set-Cookie", ["a=1", "b=2"])]
    assert coprocess_response_object_pb2.Header.DESCRIPTOR.fields_by_name["values"].number == 2
    assert coprocess_object_pb2.Event.FromString(f_bytes(1, '{"a":1}')).payload == '{"a":1}'
    assert coprocess_object_pb2.EventReply.FromString(b"") == coprocess_object_pb2.EventReply()


@pytest.mark.parametrize(
    ("name", "number"),
    [("Unknown", 0), ("Pre", 1), ("Post", 2), ("PostKeyAuth", 3), ("CustomKeyCheck", 4), ("Response", 5)],
)
def test_hook_type_numbers(name: str, number: int) -> None:
    hook_type = coprocess_common_pb2.HookType
    assert hook_type.Value(name) == number


def test_service_path_is_the_one_tyk_calls() -> None:
    service = coprocess_object_pb2.DESCRIPTOR.services_by_name["Dispatcher"]
    assert service.full_name == "coprocess.Dispatcher"
    methods = {m.name: (m.input_type.full_name, m.output_type.full_name) for m in service.methods}
    assert methods == {
        "Dispatch": ("coprocess.Object", "coprocess.Object"),
        "DispatchEvent": ("coprocess.Event", "coprocess.EventReply"),
    }
