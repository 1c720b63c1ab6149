"""Cluster HMAC signatures: valid requests pass; missing, forged, stale, tampered and replayed ones fail."""

from __future__ import annotations

import time

import pytest

from edgeweave.wire.auth import (
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    AuthError,
    ClusterKey,
    RequestVerifier,
)

KEY = ClusterKey(b"the-cluster-join-secret-0123456789")
OTHER = ClusterKey(b"some-other-cluster-secret-9876543210")


def test_valid_request_then_replay_rejected() -> None:
    v = RequestVerifier(KEY)
    headers = KEY.sign_request("POST", "/v1/generate", b'{"a":1}')
    nonce = v.verify("POST", "/v1/generate", headers, b'{"a":1}', time.time())
    assert nonce == headers[HEADER_NONCE]
    with pytest.raises(AuthError, match="replayed") as e:
        v.verify("POST", "/v1/generate", headers, b'{"a":1}', time.time())
    assert e.value.status == 403


@pytest.mark.parametrize(
    "change",
    ["body", "path", "method", "other_key", "stale", "future", "bad_timestamp"],
)
def test_tampering_is_rejected(change: str) -> None:
    v = RequestVerifier(KEY, window_s=30)
    body, path, method, now = b"{}", "/v1/info", "GET", time.time()
    headers = (OTHER if change == "other_key" else KEY).sign_request(method, path, body)
    if change == "body":
        body = b'{"x":1}'
    elif change == "path":
        path = "/v1/telemetry"
    elif change == "method":
        method = "POST"
    elif change == "stale":
        now += 31
    elif change == "future":
        now -= 31
    elif change == "bad_timestamp":
        headers[HEADER_TIMESTAMP] = "yesterday"
    with pytest.raises(AuthError) as e:
        v.verify(method, path, headers, body, now)
    assert e.value.status == 403


def test_missing_headers_are_401() -> None:
    headers = KEY.sign_request("GET", "/v1/info")
    del headers[HEADER_SIGNATURE]
    with pytest.raises(AuthError) as e:
        RequestVerifier(KEY).verify("GET", "/v1/info", headers, b"", time.time())
    assert e.value.status == 401


def test_response_signature_binds_nonce_status_and_body() -> None:
    sig = KEY.sign_response("n1", 200, b"body")
    assert KEY.response_valid("n1", 200, b"body", sig)
    assert not KEY.response_valid("n2", 200, b"body", sig)
    assert not KEY.response_valid("n1", 429, b"body", sig)
    assert not KEY.response_valid("n1", 200, b"bodx", sig)
    assert not OTHER.response_valid("n1", 200, b"body", sig)
    assert not KEY.response_valid("n1", 200, b"body", None)


def test_fingerprint_is_stable_public_and_secret_free() -> None:
    assert KEY.fingerprint == ClusterKey(b"the-cluster-join-secret-0123456789").fingerprint
    assert KEY.fingerprint != OTHER.fingerprint
    assert "secret" not in repr(KEY) and len(KEY.fingerprint) == 16
