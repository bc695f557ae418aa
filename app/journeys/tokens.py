"""Tokens shared across credentials: CustomKeyCheck replies that give callers with different credentials one token.

Without an id_extractor the token a CustomKeyCheck reply returns is the session's Redis key,
so a plugin that returns the same token for different credentials makes those callers share
one session, one rate-limit bucket and one quota. One reply cannot show that; this index
over the buffered captures can (docs/lint.md, `auth-shared-token`).

Kept like the journey index: brought up to date when the detail asks (never on the Dispatch
path), on the event loop only, bounded in entries (and so in bytes), forgetting what the
store evicted or cleared. It keeps keyed hashes of tokens and credentials, never the values.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import json
import os
from collections import OrderedDict

from google.protobuf.message import DecodeError

from app.capture.record import Capture
from app.query.indexing import BufferIndex
from app.redaction.secrets import NameRules, name_words
from app.store.buffer import CaptureStore
from app.tyk.lint.auth import granted_token, shared_token
from app.tyk.lint.common import Warning_
from app.tyk.outcome import Gateway
from protogen import coprocess_object_pb2 as pb

# Tokens remembered (least recently seen forgotten first), and credentials per token: enough
# to know a token is shared, and to say by how many. Each entry holds 16-byte digests and
# capture ids, so the index stays under about MAX_TOKENS * (MAX_CREDENTIALS + 1) * 200 bytes.
MAX_TOKENS = 4096
MAX_CREDENTIALS = 8
DIGEST_BYTES = 16
# Credential-named headers that change on every request for one caller (signatures, one-time
# codes, cookies carrying more than the credential): counting them would call one caller many.
_PER_REQUEST_WORDS = frozenset({"cookie", "signature", "sig", "hmac", "otp", "nonce", "date"})


class SharedTokens(BufferIndex):
    """For each token an allowed CustomKeyCheck reply returned, the distinct credentials it was returned for."""

    def __init__(self, store: CaptureStore, rules: NameRules | None = None) -> None:
        super().__init__(store)
        self.rules = rules or NameRules()
        self._salt = os.urandom(16)
        self._tokens: OrderedDict[bytes, dict[bytes, int]] = OrderedDict()
        """Token digest -> credential digest -> the newest capture id that paired them."""
        self._by_capture: dict[int, bytes] = {}
        """Capture id -> its token digest, for the captures that count."""

    def __len__(self) -> int:
        return len(self._tokens)

    def warnings(self, capture: Capture, gateway: Gateway) -> tuple[Warning_, ...]:
        """The cross-capture warnings of one capture (call `catch_up` first)."""
        if gateway.id_extractor is True:
            return ()  # the session is stored under the extractor's key, not the token
        token = self._by_capture.get(capture.id)
        credentials = self._tokens.get(token) if token is not None else None
        if credentials is None or len(credentials) < 2:
            return ()
        return (shared_token(len(credentials)),)

    def clear(self) -> None:
        self._tokens.clear()
        self._by_capture.clear()
        self._indexed = self.store.last_id

    def add(self, capture: Capture) -> None:
        """Index one capture (in id order)."""
        self._indexed = max(self._indexed, capture.id)
        if capture.kind != "dispatch" or capture.hook_type != "CustomKeyCheck" or not capture.reply:
            return
        try:
            sent = pb.Object.FromString(capture.request)
            reply = sent if capture.reply is capture.request else pb.Object.FromString(capture.reply)
        except DecodeError:
            return
        token = granted_token(sent, reply)
        credential = self._credential(sent)
        if token is None or credential is None:
            return
        key = self._digest(token.encode())
        credentials = self._tokens.pop(key, None) or {}
        self._tokens[key] = credentials  # the most recently seen last
        if credential in credentials or len(credentials) < MAX_CREDENTIALS:
            credentials[credential] = capture.id
        self._by_capture[capture.id] = key
        while len(self._tokens) > MAX_TOKENS:
            self._tokens.popitem(last=False)  # its captures' lookups then find nothing

    def _credential(self, sent: pb.Object) -> bytes | None:
        """A keyed digest of the request's credential headers; None when it has none."""
        parts = sorted(
            (name.lower(), _identity(name, value))
            for name, value in sent.request.headers.items()
            if value and self.rules.header(name) and not _PER_REQUEST_WORDS.intersection(name_words(name))
        )
        if not parts:
            return None
        return self._digest(json.dumps(parts).encode())

    def _digest(self, data: bytes) -> bytes:
        return hashlib.blake2b(data, digest_size=DIGEST_BYTES, key=self._salt).digest()

    def _prune(self) -> None:
        """Forget captures the store no longer has (evicted or cleared)."""
        first = self.store.first_id
        stale = list(itertools.takewhile(lambda capture_id: capture_id < first, self._by_capture))
        if not stale:
            return  # captures are indexed in id order: the oldest come first
        for capture_id in stale:
            del self._by_capture[capture_id]
        for key, credentials in list(self._tokens.items()):
            for credential, capture_id in list(credentials.items()):
                if capture_id < first:
                    del credentials[credential]
            if not credentials:
                del self._tokens[key]


def _identity(name: str, value: str) -> str:
    """Who a credential header names: a bearer JWT by its issuer and subject (a caller's new
    JWTs are one caller), a signature by its keyId, anything else by its value."""
    if name.lower() != "authorization":
        return value
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() == "bearer":
        claims = _jwt_claims(rest.strip())
        if claims is not None and isinstance(claims.get("sub"), str):
            return f"jwt {claims.get('iss')!r} {claims['sub']!r}"
    for param in rest.split(","):
        key, _, param_value = param.strip().partition("=")
        if key.lower() == "keyid" and param_value:
            return f"keyId {param_value.strip(chr(34))}"
    return value


def _jwt_claims(token: str) -> dict[str, object] | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError):
        return None
    return claims if isinstance(claims, dict) else None
