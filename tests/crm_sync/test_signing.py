from __future__ import annotations

import pytest

from crm_sync.errors import BadSignature, InvalidInput
from crm_sync.signing import sign, verify
from crm_sync.webhooks import backoff_s, validate_event_types, validate_url

SECRET = b"s3cret"
BODY = b'{"id":"e1","type":"work_order.created"}'


def test_signature_round_trip_returns_the_signed_time() -> None:
    header = sign(SECRET, 1_700_000_000, BODY)
    assert header.startswith("t=1700000000,v1=")
    assert verify(SECRET, header, BODY, now_s=1_700_000_010) == 1_700_000_000


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    mac = hmac.new(SECRET, b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, 1_700_000_000, BODY) == f"t=1700000000,v1={mac}"


@pytest.mark.parametrize(
    ("header", "body", "now", "reason"),
    [
        (None, BODY, 1_700_000_000, "missing"),
        ("v1=abc", BODY, 1_700_000_000, "no valid t="),
        (sign(SECRET, 1_700_000_000, BODY), BODY + b" ", 1_700_000_000, "does not match"),
        (sign(b"other", 1_700_000_000, BODY), BODY, 1_700_000_000, "does not match"),
        (sign(SECRET, 1_700_000_000, BODY), BODY, 1_700_000_301, "outside"),
    ],
)
def test_bad_signatures_are_refused_with_the_reason(
    header: str | None, body: bytes, now: int, reason: str
) -> None:
    with pytest.raises(BadSignature, match=reason):
        verify(SECRET, header, body, now_s=now)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/hook", "must be http or https"),
        ("example.com/hook", "must be http or https"),
        ("http:///hook", "has no host"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://0.0.0.0/hook", "unspecified"),
    ],
)
def test_webhook_urls_must_be_http_and_not_link_local(url: str, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason) as exc:
        validate_url(url)
    assert exc.value.field == "url"


def test_ordinary_urls_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    import crm_sync.webhooks as webhooks

    monkeypatch.setattr(webhooks, "_resolve", lambda host: ["93.184.216.34"])
    for url in ("https://hooks.example.com/x", "http://93.184.216.34:8080/hook"):
        assert validate_url(url) == url


def test_unknown_event_types_are_named() -> None:
    with pytest.raises(InvalidInput, match=r"unknown alert\.exploded"):
        validate_event_types(["alert.raised", "alert.exploded"])


def test_backoff_grows_and_is_capped() -> None:
    assert 1.0 <= backoff_s(1) <= 2.0
    assert 4.0 <= backoff_s(3) <= 8.0
    assert backoff_s(40, cap_s=600) <= 600


def test_a_name_resolving_to_link_local_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import crm_sync.webhooks as webhooks

    monkeypatch.setattr(
        webhooks,
        "_resolve",
        lambda host: ["169.254.169.254"] if host == "metadata.internal" else [],
    )
    with pytest.raises(InvalidInput, match=r"metadata\.internal -> 169\.254\.169\.254"):
        validate_url("http://metadata.internal/latest")
    # a name that does not resolve now is accepted: each delivery resolves and checks again
    assert validate_url("http://later.example/hook") == "http://later.example/hook"
