"""Web Push endpoints are untrusted URLs this server POSTs to: public https only, unless
FIELDMESH_PUSH_ALLOW names the network (a local push service); VAPID key per installation."""

from __future__ import annotations

import base64
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kernel.settings import Settings, parse_networks
from notify import push
from notify.push import PushError, application_server_key, check_endpoint, payload


def test_only_public_https_endpoints_unless_allowed(tmp_path: Path) -> None:
    s = Settings(state_dir=tmp_path)
    check_endpoint("https://8.8.8.8/push/abc", s)
    for bad, why in (
        ("http://8.8.8.8/push/abc", "https"),
        ("https://10.1.2.3/push", "public"),
        ("https://127.0.0.1:8443/push", "public"),
        ("https://[::1]/push", "public"),
        ("https://169.254.169.254/latest/meta-data", "public"),
        ("ftp://8.8.8.8/x", "http"),
        ("https://user:pw@8.8.8.8/x", "http"),
        ("https://8.8.8.8:99999/x", "URL"),
    ):
        with pytest.raises(PushError, match=why):
            check_endpoint(bad, s)
    local = s.with_overrides(push_allow=parse_networks("127.0.0.1/32", "test"))
    check_endpoint("http://127.0.0.1:8090/notify/x", local)


def test_the_vapid_key_is_made_once_per_installation(tmp_path: Path) -> None:
    s = Settings(state_dir=tmp_path)
    key = application_server_key(s)
    assert len(base64.urlsafe_b64decode(key + "=")) == 65  # an uncompressed P-256 point
    assert application_server_key(s) == key
    assert (tmp_path / "secrets" / "vapid_private.pem").stat().st_mode & 0o077 == 0


def test_payloads_stay_small() -> None:
    text = payload((1, "mention", "Title", "x" * 5000, "/console/rep/", False))
    assert len(text.encode()) < 3100


def test_concurrent_first_requests_get_one_vapid_key(tmp_path: Path) -> None:
    """The API's first push-key requests run in threads of one process at once: each must
    get the key the first writer stored (a temporary file named by the process alone was
    truncated, linked half-written or unlinked under another thread: a 500)."""
    for attempt in range(20):
        settings = Settings(state_dir=tmp_path / str(attempt))
        start = threading.Barrier(8)

        def first_request(s: Settings = settings, b: threading.Barrier = start) -> str:
            b.wait()
            return push.application_server_key(s)

        with ThreadPoolExecutor(max_workers=8) as pool:
            keys = list(pool.map(lambda _: first_request(), range(8)))
        assert len(set(keys)) == 1
        assert keys[0] == push.application_server_key(settings)
        assert [p.name for p in push.vapid_path(settings).parent.iterdir()] == ["vapid_private.pem"]
