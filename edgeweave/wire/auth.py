"""Cluster authentication: HMAC-SHA256 signed requests and responses.

Why HMAC and not mutual TLS: devices are found by mDNS at addresses that
change, phones and Pis have no stable hostnames to put in certificates, and a
shared join secret is what a home cluster can be set up with.  Both
directions are authenticated with it:

* the coordinator signs every request (method, path, timestamp, a fresh
  random nonce, SHA-256 of the body); a device rejects a missing signature
  (401), a bad one, a timestamp outside the window, or a nonce it has already
  seen within the window (403, replay);
* the device signs every response to a signed request, binding the
  coordinator's nonce, the status code and the body (the event stream is
  signed over its headers, nonce and status: it proves the peer knows the
  secret; integrity of stream content against an active attacker on the LAN
  needs TLS in front).

Keys are derived from the secret (the secret itself never goes on the wire);
the fingerprint in mDNS TXT records is a one-way hash that only lets the
coordinator skip members of other clusters cheaply: it proves nothing.
Timestamps are wall-clock: members need clocks within ``window_s``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

HEADER_TIMESTAMP = "X-Edgeweave-Timestamp"
HEADER_NONCE = "X-Edgeweave-Nonce"
HEADER_SIGNATURE = "X-Edgeweave-Signature"
HEADER_RESPONSE_SIGNATURE = "X-Edgeweave-Response-Signature"
STREAM_BODY = b"<stream>"  # what an event-stream response signs in place of its body


class AuthError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class ClusterKey:
    """Signing key derived from the cluster join secret."""

    def __init__(self, secret: bytes) -> None:
        self._key = hmac.new(secret, b"edgeweave/cluster-key/v1", hashlib.sha256).digest()

    def __repr__(self) -> str:
        return f"ClusterKey(fingerprint={self.fingerprint})"

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(b"edgeweave/fingerprint/v1" + self._key).hexdigest()[:16]

    def _mac(self, *parts: str | bytes) -> str:
        msg = b"\n".join(p.encode() if isinstance(p, str) else p for p in parts)
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()

    def sign_request(self, method: str, path: str, body: bytes = b"") -> dict[str, str]:
        timestamp = f"{time.time():.3f}"
        nonce = secrets.token_hex(16)
        sig = self._mac("request", method.upper(), path, timestamp, nonce, hashlib.sha256(body).hexdigest())
        return {HEADER_TIMESTAMP: timestamp, HEADER_NONCE: nonce, HEADER_SIGNATURE: sig}

    def request_valid(self, method: str, path: str, timestamp: str, nonce: str, body: bytes, signature: str) -> bool:
        want = self._mac("request", method.upper(), path, timestamp, nonce, hashlib.sha256(body).hexdigest())
        return hmac.compare_digest(want, signature)

    def sign_response(self, nonce: str, status: int, body: bytes) -> str:
        return self._mac("response", nonce, str(status), hashlib.sha256(body).hexdigest())

    def response_valid(self, nonce: str, status: int, body: bytes, signature: str | None) -> bool:
        return signature is not None and hmac.compare_digest(self.sign_response(nonce, status, body), signature)


class RequestVerifier:
    """Device side: checks signatures, the time window, and nonce reuse."""

    def __init__(self, key: ClusterKey, window_s: float = 30.0) -> None:
        self.key = key
        self.window_s = window_s
        self._seen: dict[str, float] = {}  # nonce -> when it may be forgotten

    def verify(self, method: str, path: str, headers: Mapping[str, str], body: bytes, now: float) -> str:
        """Return the request's nonce, or raise :class:`AuthError`."""
        timestamp, nonce, sig = (headers.get(h) for h in (HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE))
        if not (timestamp and nonce and sig):
            raise AuthError(401, "missing cluster signature headers")
        try:
            sent = float(timestamp)
        except ValueError:
            raise AuthError(403, "malformed timestamp") from None
        if abs(now - sent) > self.window_s:
            raise AuthError(403, f"timestamp outside the {self.window_s:.0f} s window")
        if not self.key.request_valid(method, path, timestamp, nonce, body, sig):
            raise AuthError(403, "bad cluster signature")
        self._forget_expired(now)
        if nonce in self._seen:
            raise AuthError(403, "replayed request (nonce already used)")
        self._seen[nonce] = now + 2 * self.window_s
        return nonce

    def _forget_expired(self, now: float) -> None:
        if len(self._seen) > 4096:
            self._seen = {n: t for n, t in self._seen.items() if t > now}
