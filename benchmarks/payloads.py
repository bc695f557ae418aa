"""Benchmark payloads: a realistic Post-hook Object grown to a given serialized size."""

from __future__ import annotations

from protogen import coprocess_object_pb2 as pb


def object_of_size(total_bytes: int) -> pb.Object:
    """A Post hook Object with session, spec and headers, its raw_body padded to `total_bytes` in all."""
    obj = pb.Object(hook_type="Post", hook_name="MyPostHook")
    obj.spec.update(
        {
            "APIID": "b84fe1a04e5648927971c0557971565c",
            "OrgID": "5e9d9544a1dcd60001d0ed20",
            "bundle_hash": "3f7c87e892c955c68f2e30c6e25c75a9",
        }
    )
    request = obj.request
    request.headers.update(
        {
            "Content-Type": "application/json",
            "Host": "gw.example.com",
            "Authorization": "5e9d9544a1dcd60001d0ed20f8a3c4b2",
            "User-Agent": "bench/1.0",
        }
    )
    request.url = request.request_uri = "/orders-api/v1/orders?dry_run=false"
    request.method, request.scheme = "POST", "https"
    request.return_overrides.response_code = -1
    session = obj.session
    session.rate, session.per, session.quota_max, session.org_id = 1000, 60, 10000, "5e9d9544a1dcd60001d0ed20"
    session.metadata.update({"user_id": "user-42", "tenant": "acme"})
    session.tags.extend(["tier-gold", "region-eu"])
    obj.metadata.update(session.metadata)
    missing = total_bytes - obj.ByteSize() - 8  # tag and length of raw_body
    request.raw_body = b'{"pad":"' + b"x" * max(0, missing - 10) + b'"}'
    return obj
